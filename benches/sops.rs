//! decrypt + set + write of a 200-key compose.env, the work one rotation does on the file.
//! Compare with Go sops at process level: scripts/bench-sops-vs-go.sh.

use criterion::{criterion_group, criterion_main, Criterion};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{encrypt_new, write_verified, Identities, SopsFile};
use std::hint::black_box;

fn compose_env(keys: usize) -> Vec<u8> {
    let mut s = String::from("# Komodo compose.env (benchmark)\n");
    for i in 0..keys {
        if i % 10 == 0 {
            s.push_str(&format!("# section {i}\n"));
        }
        s.push_str(&format!(
            "KOMODO_SETTING_{i:03}=value-{i}-{}\n",
            "x".repeat(i % 40)
        ));
    }
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let id = age::x25519::Identity::generate();
    let sk = secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
    let ids = Identities::from_key_text(&sk, "bench").unwrap();
    let enc = encrypt_new(&compose_env(200), &[id.to_public().to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compose.env");
    std::fs::write(&path, &enc).unwrap();
    let value = Secret::generate().unwrap();

    c.bench_function("sops decrypt 200 keys", |b| {
        b.iter(|| {
            let f = SopsFile::parse(black_box(enc.clone()), "compose.env").unwrap();
            black_box(f.decrypt(&ids).unwrap());
        })
    });
    c.bench_function("sops decrypt+set+write_verified 200 keys", |b| {
        b.iter(|| {
            let f = SopsFile::load(&path).unwrap();
            let out = f
                .with_values(&ids, &[("KOMODO_SETTING_100", &value)])
                .unwrap();
            black_box(write_verified(&path, &out, &ids).unwrap());
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
