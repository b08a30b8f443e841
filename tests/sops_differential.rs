//! Our SOPS store against the real Go sops 3.11.0, differentially, on random input:
//!
//! - `random_files_behave_like_sops`: a seeded generator builds dotenv files in the space sops
//!   accepts (random keys, values, comments, rules, recipients), sops encrypts them, and then
//!   our decrypt == sops decrypt; sops reads and `sops set`s what our `set` and
//!   `rotate-data-key` write; random corruptions are accepted or refused by both alike (same
//!   plaintext when accepted). A plain run uses one fixed seed (a gate: the same verdict on
//!   every run); `KOMODO_ROTATE_DIFF_SEED=random` explores with a seed from the clock,
//!   `KOMODO_ROTATE_DIFF_SEED=<n>` replays a run, `KOMODO_ROTATE_DIFF_FILES=<n>` changes the
//!   bound. The seed is printed; every disagreement is written as a reproducer folder
//!   (`enc.env`, `key.txt`, `NOTE.txt`) whose path is printed.
//! - `differential_vectors_behave_as_decided`: every folder of
//!   `shared/sops-vectors/differential/` behaves as its README row asks.
//!
//! Under `CI=true` a missing sops fails the test instead of skipping it.

#[path = "common/shared.rs"]
mod shared;
#[path = "common/sops_oracle.rs"]
mod sops_oracle;

use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use secrecy::ExposeSecret;
use sops_oracle::Oracle;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// splitmix64: small, seedable, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// The seed a plain run uses: the suite must pass or fail the same way on every run, so CI is a
/// gate and not a lottery. This one found two disagreements (a re-spelled `sops_aGe__` section, a
/// rule with a byte that is not UTF-8) that `KOMODO_ROTATE_DIFF_SEED=random` runs turned up.
const GATE_SEED: u64 = 1796525889927159996;

/// `KOMODO_ROTATE_DIFF_SEED=<n>` replays a run, `=random` explores (a seed from the clock);
/// unset: [`GATE_SEED`].
fn seed() -> u64 {
    match std::env::var("KOMODO_ROTATE_DIFF_SEED").as_deref() {
        Err(_) => GATE_SEED,
        Ok("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        Ok(s) => s
            .trim()
            .parse()
            .expect("KOMODO_ROTATE_DIFF_SEED must be a u64 or `random`"),
    }
}

/// Pieces of values and comments: what compose.env files hold, plus the bytes that trip parsers.
const PIECES: &[&[u8]] = &[
    b"a",
    b"Z",
    b"0",
    b"9",
    b"hunter2",
    b" ",
    b"  ",
    b"#",
    b"=",
    b"\"",
    b"'",
    b"\\",
    b"\\n",
    b"\\t",
    b"$",
    b"${X}",
    b"\t",
    "ä".as_bytes(),
    "鍵".as_bytes(),
    "✓".as_bytes(),
    b"\r",
    b"\xe9",
    b"\xff",
    b"ENC[",
    b"ENC[AES256_GCM,data:",
    b"]",
    b"sops_",
    b"://",
    b"@",
];

const KEY_BASES: &[&str] = &[
    "KOMODO_DB_PASSWORD",
    "KOMODO_DB_USERNAME",
    "PASSKEY",
    "TZ",
    "A",
    "b",
    "x_y",
    " LEAD",
    "TRAIL ",
    "export X",
    "K\u{e4}Y",
    "DUP",
];
const KEY_SUFFIXES: &[&str] = &["", "", "", "_unencrypted", "_PLAIN", "_SECRET", "_PASSWORD"];

fn random_text(r: &mut Rng, max_pieces: usize) -> Vec<u8> {
    let n = r.below(max_pieces + 1);
    let mut v = Vec::new();
    for _ in 0..n {
        let p = r.pick::<&[u8]>(PIECES);
        v.extend_from_slice(p);
    }
    v
}

fn random_key(r: &mut Rng) -> Vec<u8> {
    let mut k = format!("{}{}", r.pick(KEY_BASES), r.pick(KEY_SUFFIXES)).into_bytes();
    if r.chance(4) {
        // A byte that is not UTF-8, inside the key name.
        k.insert(1.min(k.len()), 0xE9);
    }
    k
}

/// One rule as sops flags or a creation rule (`mac_only_encrypted` has no flag in 3.11).
struct Rule {
    flags: Vec<String>,
    yaml: Option<String>,
}

fn random_rule(r: &mut Rng) -> Rule {
    let rules: &[(&str, &[&str])] = &[
        ("", &[""]),
        ("unencrypted_suffix", &["_unencrypted", "_PLAIN", "Y"]),
        ("encrypted_suffix", &["_SECRET", "_PASSWORD", "A"]),
        ("unencrypted_regex", &["^(TZ|A)", "PLAIN|ä", "^x"]),
        ("encrypted_regex", &["PASS", "SECRET|DUP", "^K"]),
    ];
    let (name, vals) = r.pick(rules);
    let val = r.pick(vals).to_string();
    if r.chance(25) {
        let mut y = String::from("    mac_only_encrypted: true\n");
        if !name.is_empty() {
            y.push_str(&format!("    {name}: '{val}'\n"));
        }
        return Rule {
            flags: vec![],
            yaml: Some(y),
        };
    }
    let flags = if name.is_empty() {
        vec![]
    } else {
        vec![format!("--{}", name.replace('_', "-")), val]
    };
    Rule { flags, yaml: None }
}

fn random_plaintext(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let lines = 1 + r.below(10);
    for _ in 0..lines {
        match r.below(100) {
            0..=14 => {
                out.push(b'#');
                out.extend(random_text(r, 4));
            }
            15..=21 => {}
            _ => {
                out.extend(random_key(r));
                out.push(b'=');
                out.extend(random_text(r, 5));
            }
        }
        out.push(b'\n');
    }
    if r.chance(10) {
        out.pop();
    }
    out
}

/// A value for `set`: UTF-8 (values come in as text); CR and `=`/`#` included.
fn random_value(r: &mut Rng) -> String {
    let pieces = [
        "v", "0", " ", "#", "=", "\"", "ä", "鍵", "\r", "\\", "\t", "${X}",
    ];
    let n = 1 + r.below(6);
    (0..n).map(|_| *r.pick(&pieces)).collect()
}

fn ours_decrypt(bytes: &[u8], ids: &Identities) -> Result<Vec<u8>, String> {
    SopsFile::parse(bytes.to_vec(), "f.env")
        .and_then(|f| f.decrypt(ids))
        .map(|d| d.plaintext_dotenv().expose_secret().to_vec())
        .map_err(|e| e.to_string())
}

/// One way to damage a sops file; returns a description, or None when it does not apply.
fn corrupt(r: &mut Rng, enc: &[u8]) -> Option<(Vec<u8>, String)> {
    let mut lines: Vec<Vec<u8>> = enc.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    let trailing = lines.last().is_some_and(|l| l.is_empty());
    if trailing {
        lines.pop();
    }
    let join = |lines: &[Vec<u8>]| {
        let mut v = lines.join(&b"\n"[..]);
        if trailing {
            v.push(b'\n');
        }
        v
    };
    let n = lines.len();
    if n == 0 {
        return None;
    }
    let i = r.below(n);
    let what;
    match r.below(13) {
        0 => {
            if lines[i].is_empty() {
                return None;
            }
            let at = r.below(lines[i].len());
            let b = *r.pick(&[b'\r', 0xFF, b'A', b'=', b'#', b' ', b'/', b'+', b'_', b'\n']);
            what = format!("line {} byte {at} set to {b:#04x}", i + 1);
            lines[i][at] = b;
        }
        1 => {
            what = format!("line {} deleted", i + 1);
            lines.remove(i);
        }
        2 => {
            what = format!("line {} duplicated", i + 1);
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        3 => {
            let j = r.below(n);
            if i == j {
                return None;
            }
            what = format!("lines {} and {} swapped", i + 1, j + 1);
            lines.swap(i, j);
        }
        4 => {
            // Letter case in a metadata key name.
            let metas: Vec<usize> = (0..n).filter(|&k| lines[k].starts_with(b"sops_")).collect();
            let k = *r.pick(&metas);
            let eq = lines[k].iter().position(|&b| b == b'=')?;
            let at = 5 + r.below(eq.checked_sub(5).filter(|&x| x > 0)?);
            if !lines[k][at].is_ascii_lowercase() {
                return None;
            }
            lines[k][at] = lines[k][at].to_ascii_uppercase();
            what = format!("line {} metadata key letter {at} upper-cased", k + 1);
        }
        5 => {
            // Unused base64 padding bits: the char before '=' goes up by one.
            let hits: Vec<(usize, usize)> = (0..n)
                .flat_map(|k| {
                    let l = &lines[k];
                    (1..l.len())
                        .filter(move |&p| l[p] == b'=' && l[p - 1] != b'=' && l[p - 1] != b':')
                        .filter(move |&p| p + 1 < l.len() && (l[p + 1] == b',' || l[p + 1] == b'='))
                        .map(move |p| (k, p - 1))
                })
                .collect();
            if hits.is_empty() {
                return None;
            }
            let (k, p) = *r.pick(&hits);
            let c = lines[k][p];
            let next = match c {
                b'A'..=b'Y' | b'a'..=b'y' | b'0'..=b'8' => c + 1,
                _ => return None,
            };
            lines[k][p] = next;
            what = format!("line {} base64 padding bits changed", k + 1);
        }
        6 => {
            // The `type:` of an envelope.
            let hits: Vec<usize> = (0..n)
                .filter(|&k| lines[k].windows(5).any(|w| w == b"type:"))
                .collect();
            if hits.is_empty() {
                return None;
            }
            let k = *r.pick(&hits);
            let p = lines[k].windows(5).rposition(|w| w == b"type:")? + 5;
            let end = lines[k][p..].iter().position(|&b| b == b']')? + p;
            let t = *r.pick(&["kommentt", "xtr", "str", "comment", "int", "bytes"]);
            lines[k].splice(p..end, t.bytes());
            what = format!("line {} envelope type set to {t}", k + 1);
        }
        7 => {
            let k = (0..n).find(|&k| lines[k].starts_with(b"sops_age__list_"))?;
            let p = b"sops_age__list_".len();
            let c = *r.pick(b"X9-");
            lines[k][p] = c;
            what = format!("line {} list index set to {}", k + 1, c as char);
        }
        8 => {
            let k = (0..n).find(|&k| {
                lines[k].starts_with(b"sops_unencrypted_regex=")
                    || lines[k].starts_with(b"sops_encrypted_regex=")
            })?;
            lines[k].push(b'[');
            what = format!("line {} rule regex made uncompilable", k + 1);
        }
        9 => {
            let at = r.below(enc.len());
            return Some((enc[..at].to_vec(), format!("truncated at byte {at}")));
        }
        10 => {
            lines[i].push(b'\r');
            what = format!("line {} ends with CR", i + 1);
        }
        11 => {
            what = format!("line {} gets a 0xE9 byte at its end", i + 1);
            lines[i].push(0xE9);
        }
        _ => {
            what = "every line ends with CRLF".into();
            for l in &mut lines {
                l.push(b'\r');
            }
        }
    }
    Some((join(&lines), what))
}

struct Disagreement {
    note: String,
    enc: Vec<u8>,
    key: String,
}

struct Ctx<'a> {
    o: &'a Oracle,
    key_file: PathBuf,
    ids: Identities,
    found: &'a Mutex<Vec<Disagreement>>,
    tag: String,
    key_text: String,
}

impl Ctx<'_> {
    fn differ(&self, enc: &[u8], note: String) {
        self.found.lock().unwrap().push(Disagreement {
            note: format!("{}: {note}", self.tag),
            enc: enc.to_vec(),
            key: self.key_text.clone(),
        });
    }

    fn sops_decrypt(&self, bytes: &[u8]) -> Result<Vec<u8>, (i32, String)> {
        let p = self.o.write(&format!("{}.dec.env", self.tag), bytes);
        let out = self.o.run_env(
            [
                "decrypt",
                "--input-type",
                "dotenv",
                "--output-type",
                "dotenv",
                p.to_str().unwrap(),
            ],
            None,
            &[("SOPS_AGE_KEY_FILE", self.key_file.as_os_str())],
        );
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err((
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    fn sops_set(&self, bytes: &[u8], key: &str, value: &str) -> Result<Vec<u8>, String> {
        let p = self.o.write(&format!("{}.set.env", self.tag), bytes);
        let index = format!("[{}]", serde_json::to_string(key).unwrap());
        let out = self.o.run_env(
            [
                "set",
                "--input-type",
                "dotenv",
                "--output-type",
                "dotenv",
                "--value-stdin",
                p.to_str().unwrap(),
                index.as_str(),
            ],
            Some(serde_json::to_string(value).unwrap().as_bytes()),
            &[("SOPS_AGE_KEY_FILE", self.key_file.as_os_str())],
        );
        if out.status.success() {
            Ok(std::fs::read(&p).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Both read `bytes` alike: both refuse, or both accept with the same plaintext.
    fn compare(&self, bytes: &[u8], what: &str) -> Option<Vec<u8>> {
        self.compare_with(bytes, what, false)
    }

    /// `sops_nondeterministic`: sops itself accepts or refuses this input depending on Go's map
    /// order (a malformed `__list_` index; measured), so only the plaintexts are compared.
    fn compare_with(
        &self,
        bytes: &[u8],
        what: &str,
        sops_nondeterministic: bool,
    ) -> Option<Vec<u8>> {
        let theirs = self.sops_decrypt(bytes);
        let ours = ours_decrypt(bytes, &self.ids);
        match (&theirs, &ours) {
            (Ok(t), Ok(o)) if t == o => return Some(o.clone()),
            (Ok(t), Ok(o)) => self.differ(
                bytes,
                format!(
                    "{what}: different plaintext\n--- sops\n{}\n--- ours\n{}",
                    String::from_utf8_lossy(t),
                    String::from_utf8_lossy(o)
                ),
            ),
            _ if sops_nondeterministic => {}
            (Ok(_), Err(e)) => {
                self.differ(bytes, format!("{what}: sops reads it, ours refuses: {e}"))
            }
            (Err((c, e)), Ok(_)) => self.differ(
                bytes,
                format!(
                    "{what}: ours reads it, sops refuses (exit {c}): {}",
                    e.trim()
                ),
            ),
            (Err(_), Err(_)) => {}
        }
        None
    }

    /// Our write must be read and edited by sops: `sops set` decrypts it and checks its MAC,
    /// then sops and we must read sops' result alike (one sops run fewer than decrypting both).
    fn check_written(&self, written: &[u8], what: &str) {
        let ours_before = match ours_decrypt(written, &self.ids) {
            Ok(p) => p,
            Err(e) => {
                return self.differ(written, format!("{what}: ours cannot read it back: {e}"))
            }
        };
        match self.sops_set(written, "SOPS_SET_PROBE", "probe") {
            Ok(after) => {
                if let Some(p) = self.compare(&after, &format!("{what}, then sops set")) {
                    let mut want = ours_before;
                    want.extend_from_slice(b"SOPS_SET_PROBE=probe\n");
                    if p != want {
                        self.differ(
                            written,
                            format!("{what}: sops' view of it differs from ours"),
                        );
                    }
                }
            }
            Err(e) => self.differ(
                written,
                format!("{what}: sops set refuses it: {}", e.trim()),
            ),
        }
    }
}

fn run_case(
    o: &Oracle,
    r: &mut Rng,
    n: usize,
    found: &Mutex<Vec<Disagreement>>,
    stats: &Mutex<[usize; 4]>,
) {
    let nrec = 1 + r.below(3);
    let idents: Vec<age::x25519::Identity> = (0..nrec)
        .map(|_| age::x25519::Identity::generate())
        .collect();
    let recipients: Vec<String> = idents.iter().map(|i| i.to_public().to_string()).collect();
    let opener = &idents[r.below(nrec)];
    let key_text = format!(
        "# public key: {}\n{}\n",
        opener.to_public(),
        opener.to_string().expose_secret()
    );
    let tag = format!("case{n}");
    let key_file = o.write(&format!("{tag}.key.txt"), key_text.as_bytes());
    let ids = Identities::from_key_file(&key_file).unwrap();
    let ctx = Ctx {
        o,
        key_file: key_file.clone(),
        ids,
        found,
        tag: tag.clone(),
        key_text,
    };
    let plain = random_plaintext(r);
    let rule = random_rule(r);
    let plain_path = o.write(&format!("{tag}.plain.env"), &plain);
    let config = o.path(&format!("{tag}.sops.yaml"));
    let mut args: Vec<String> = vec!["encrypt".into()];
    if let Some(y) = &rule.yaml {
        std::fs::write(
            &config,
            format!("creation_rules:\n  - age: {}\n{y}", recipients.join(",")),
        )
        .unwrap();
        args.extend(["--config".into(), config.to_str().unwrap().into()]);
    } else {
        args.extend(["--age".into(), recipients.join(",")]);
        args.extend(rule.flags.iter().cloned());
    }
    args.extend([
        "--input-type".into(),
        "dotenv".into(),
        "--output-type".into(),
        "dotenv".into(),
        plain_path.to_str().unwrap().into(),
    ]);
    let out = o.run(&args, None);
    if !out.status.success() {
        stats.lock().unwrap()[0] += 1;
        return;
    }
    let enc = out.stdout;
    stats.lock().unwrap()[1] += 1;

    let Some(_) = ctx.compare(&enc, "sops-encrypted file") else {
        return;
    };

    // Our `set`, of an existing key or a new one.
    let file = SopsFile::parse(enc.clone(), "f.env").unwrap();
    let dec = file.decrypt(&ctx.ids).unwrap();
    let keys = dec.keys();
    let key = if !keys.is_empty() && r.chance(60) {
        r.pick(&keys).clone()
    } else {
        format!("NEW_{}{}", r.below(100), r.pick(KEY_SUFFIXES))
    };
    let value = random_value(r);
    let dup = keys.iter().filter(|k| **k == key).count() > 1;
    let lossy_key = key.contains('\u{fffd}');
    let secret = Secret::new(value.clone());
    match file.with_values_verified(&ctx.ids, &[(key.as_str(), &secret)]) {
        Ok(edit) => {
            let w = edit.bytes().to_vec();
            // The in-memory verification must equal a full decryption of the new bytes.
            let in_memory = edit.decrypted().plaintext_dotenv().expose_secret().to_vec();
            if ours_decrypt(&w, &ctx.ids).as_deref() != Ok(in_memory.as_slice()) {
                ctx.differ(
                    &w,
                    format!("set of {key:?}: in-memory verification differs from a full decrypt"),
                );
            }
            if dup {
                ctx.differ(
                    &enc,
                    format!("our set of duplicate key {key:?} was not refused"),
                );
            }
            let got = SopsFile::parse(w.clone(), "w")
                .and_then(|f| f.decrypt(&ctx.ids))
                .map(|d| d.get(&key).map(|s| s.expose().to_string()));
            if got.as_ref().ok().cloned().flatten().as_deref() != Some(value.as_str()) {
                ctx.differ(&w, format!("our set of {key:?} does not read back"));
            }
            ctx.check_written(&w, &format!("our set of {key:?}"));
            stats.lock().unwrap()[2] += 1;
        }
        Err(e) => {
            if !dup && !lossy_key {
                ctx.differ(&enc, format!("our set of {key:?} refused: {e}"));
            }
        }
    }

    // Our data-key rotation.
    match file.rotate_data_key(&ctx.ids) {
        Ok(w) => {
            let before = ours_decrypt(&enc, &ctx.ids).unwrap();
            if ours_decrypt(&w, &ctx.ids).as_deref() != Ok(before.as_slice()) {
                ctx.differ(&w, "rotate-data-key changed the plaintext".into());
            }
            ctx.check_written(&w, "our rotate-data-key");
        }
        Err(e) => ctx.differ(&enc, format!("our rotate-data-key refused: {e}")),
    }

    // Corruptions.
    for _ in 0..3 {
        if let Some((bad, what)) = corrupt(r, &enc) {
            ctx.compare_with(
                &bad,
                &format!("corruption ({what})"),
                what.contains("list index"),
            );
            stats.lock().unwrap()[3] += 1;
        }
    }
}

#[test]
fn random_files_behave_like_sops() {
    let seed = seed();
    let files: usize = std::env::var("KOMODO_ROTATE_DIFF_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    eprintln!("sops differential: KOMODO_ROTATE_DIFF_SEED={seed} KOMODO_ROTATE_DIFF_FILES={files}");
    // sops runs are mostly process start-up and waiting: three in flight keep 2 cores busy.
    let workers = 3;
    let oracles: Vec<Oracle> = (0..workers).filter_map(|_| Oracle::get()).collect();
    if oracles.len() < workers {
        return; // Oracle::get printed SKIPPED (and panicked under CI=true).
    }
    let found = Mutex::new(Vec::new());
    let stats = Mutex::new([0usize; 4]);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for (w, o) in oracles.iter().enumerate() {
            let (found, stats) = (&found, &stats);
            s.spawn(move || {
                for n in (w..files).step_by(workers) {
                    // One generator per file, so a file replays alone from (seed, n).
                    let mut r = Rng(seed ^ (n as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                    run_case(o, &mut r, n, found, stats);
                }
            });
        }
    });
    let [refused, encrypted, sets, corruptions] = *stats.lock().unwrap();
    eprintln!(
        "sops differential: {encrypted} files encrypted by sops ({refused} plaintexts refused by sops encrypt), {sets} sets, {corruptions} corruptions, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let found = found.into_inner().unwrap();
    if found.is_empty() {
        assert!(
            encrypted * 2 >= files,
            "sops refused most generated plaintexts: the generator is broken"
        );
        return;
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sops-differential-{seed}"));
    let mut report = String::new();
    for (i, d) in found.iter().enumerate() {
        let dir = root.join(format!("{i:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("enc.env"), &d.enc).unwrap();
        std::fs::write(dir.join("key.txt"), &d.key).unwrap();
        std::fs::write(dir.join("NOTE.txt"), format!("seed {seed}\n{}\n", d.note)).unwrap();
        let first = d.note.lines().next().unwrap_or("");
        report.push_str(&format!("  {}: {first}\n", dir.display()));
    }
    panic!(
        "{} disagreement(s) with sops (KOMODO_ROTATE_DIFF_SEED={seed}); reproducers:\n{report}",
        found.len()
    );
}

fn differential_dir() -> PathBuf {
    shared::sops_vectors("differential")
}

/// What the README row of each folder asks of us.
enum Want {
    /// Read it as sops does (same plaintext), and keep every untouched byte on `set`.
    Read,
    /// Refuse `set KEY` with exit 2, the message saying why, the file unchanged.
    RefuseSet(&'static str, &'static str, &'static str),
    /// Refuse to decrypt, the message naming the problem.
    RefuseRead(&'static str),
}

fn want(folder: &str) -> Want {
    match folder {
        "min-02-set-duplicate-key" => Want::RefuseSet("A", "v", "compose uses the last"),
        "min-03-set-backslash-n-into-clear-value"
        | "min-03b-set-backslash-n-into-clear-value-mac-only" => {
            Want::RefuseSet("TZ_unencrypted", "a\\nb", "literal backslash-n")
        }
        "min-04-set-new-key-sops-prefix" => Want::RefuseSet("sops_x", "v", "reserves"),
        "min-11-mac-wrong-type" => Want::RefuseRead("Unknown datatype"),
        "min-01-cr-in-clear-value"
        | "min-05-non-utf8-byte"
        | "min-05b-non-utf8-in-recipient"
        | "min-06-noncanonical-base64"
        | "min-07-metadata-key-case"
        | "min-08-metadata-list-index"
        | "min-09-invalid-rule-regex"
        | "min-10-comment-wrong-type" => Want::Read,
        other => panic!("differential/{other} has no decision in this test: add its README row"),
    }
}

#[test]
fn differential_vectors_behave_as_decided() {
    let oracle = Oracle::get();
    let dir = differential_dir();
    let mut folders: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert!(folders.len() >= 13, "{folders:?}");
    for name in &folders {
        let src = dir.join(name);
        let enc = std::fs::read(src.join("enc.env")).unwrap();
        let key_file = src.join("key.txt");
        let ids = Identities::from_key_file(&key_file).unwrap();
        match want(name) {
            Want::Read => {
                let file =
                    SopsFile::parse(enc.clone(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
                let dec = file.decrypt(&ids).unwrap_or_else(|e| panic!("{name}: {e}"));
                let ours = dec.plaintext_dotenv().expose_secret().to_vec();
                match name.as_str() {
                    "min-01-cr-in-clear-value" => {
                        assert!(
                            ours.windows(20).any(|w| w == b"NOTE_unencrypted=x\ry"),
                            "{name}"
                        )
                    }
                    "min-05-non-utf8-byte" => assert!(ours.contains(&0xE9), "{name}"),
                    "min-10-comment-wrong-type" => {
                        assert!(ours.starts_with(b"#ENC[AES256_GCM,"), "{name}");
                        assert_eq!(dec.warnings().len(), 1, "{name}");
                    }
                    _ => {}
                }
                if let Some(o) = &oracle {
                    let out = o.run_env(
                        [
                            std::ffi::OsStr::new("decrypt"),
                            "--input-type".as_ref(),
                            "dotenv".as_ref(),
                            "--output-type".as_ref(),
                            "dotenv".as_ref(),
                            src.join("enc.env").as_os_str(),
                        ],
                        None,
                        &[("SOPS_AGE_KEY_FILE", key_file.as_os_str())],
                    );
                    assert!(out.status.success(), "{name}: sops refuses it now");
                    assert_eq!(
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&ours),
                        "{name}: plaintext differs from sops"
                    );
                }
                // An edit keeps every line it does not change byte for byte (CR, bad UTF-8,
                // metadata spelling), changing only the MAC and the timestamp.
                let v = Secret::new("v".into());
                let written = file.with_values(&ids, &[("ZZ_NEW", &v)]).unwrap();
                let old: Vec<&[u8]> = enc.split(|&b| b == b'\n').collect();
                let new: Vec<&[u8]> = written.split(|&b| b == b'\n').collect();
                let changed: Vec<&&[u8]> = old.iter().filter(|l| !new.contains(l)).collect();
                assert_eq!(
                    changed.len(),
                    2,
                    "{name}: only MAC and lastmodified change: {changed:?}"
                );
                assert!(
                    changed
                        .iter()
                        .all(|l| l.to_ascii_lowercase().starts_with(b"sops_mac=")
                            || l.to_ascii_lowercase().starts_with(b"sops_lastmodified=")),
                    "{name}"
                );
                if let Some(o) = &oracle {
                    let p = o.write(&format!("{name}.written.env"), &written);
                    let out = o.run_env(
                        [
                            std::ffi::OsStr::new("decrypt"),
                            "--input-type".as_ref(),
                            "dotenv".as_ref(),
                            "--output-type".as_ref(),
                            "dotenv".as_ref(),
                            p.as_os_str(),
                        ],
                        None,
                        &[("SOPS_AGE_KEY_FILE", key_file.as_os_str())],
                    );
                    assert!(
                        out.status.success(),
                        "{name}: sops cannot read our edit: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            Want::RefuseSet(key, value, why) => {
                let tmp = tempfile::tempdir().unwrap();
                let p = tmp.path().join("enc.env");
                std::fs::write(&p, &enc).unwrap();
                let out = sops_oracle::ours(
                    &[
                        "sops".as_ref(),
                        "set".as_ref(),
                        p.as_os_str(),
                        key.as_ref(),
                        "--age-key-file".as_ref(),
                        key_file.as_os_str(),
                    ],
                    Some(value.as_bytes()),
                    &[],
                );
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{name}: {err}");
                assert!(err.contains(why), "{name}: the refusal must say why: {err}");
                assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
                assert_eq!(std::fs::read(&p).unwrap(), enc, "{name}: file changed");
            }
            Want::RefuseRead(why) => {
                let e = SopsFile::parse(enc.clone(), name)
                    .and_then(|f| f.decrypt(&ids))
                    .expect_err(name);
                assert!(e.to_string().contains(why), "{name}: {e}");
                assert!(
                    e.to_string().contains("line "),
                    "{name}: names the line: {e}"
                );
            }
        }
    }
}

/// CR is data, as in sops: a CR inside a value, key or comment reads the same as sops reads it,
/// and a CRLF file is refused by both (its `sops_lastmodified` ends with a CR), naming CRLF.
#[test]
fn cr_bytes_and_crlf_files_behave_like_sops() {
    let Some(o) = Oracle::get() else { return };
    let ids = Identities::from_key_file(&o.key_file).unwrap();
    let plain = b"A=x\ry\rz\nK\r=v\n#c\rc\nB_unencrypted=1\r\nC=end\r\n";
    let enc = o.encrypt("cr.env", plain, &["--age", &o.age_public]);
    let p = o.write("cr.enc.env", &enc);
    let theirs = o.decrypt(&p).expect("sops reads CR bytes");
    let ours = ours_decrypt(&enc, &ids).expect("we read CR bytes");
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    // Our edit keeps every CR, and sops reads the result.
    let v = Secret::new("new\rvalue".into());
    let file = SopsFile::parse(enc.clone(), "cr.enc.env").unwrap();
    let written = file.with_values(&ids, &[("B_unencrypted", &v)]).unwrap();
    assert!(written.windows(10).any(|w| w == b"C=ENC[AES2"));
    let kept: &[u8] = b"\nK\r=ENC[AES256_GCM,";
    assert!(
        written.windows(kept.len()).any(|w| w == kept),
        "key with a CR kept"
    );
    let p2 = o.write("cr.written.env", &written);
    let after = o.decrypt(&p2).expect("sops reads our edit");
    assert_eq!(after, ours_decrypt(&written, &ids).unwrap());
    let want: &[u8] = b"B_unencrypted=new\rvalue\n";
    assert!(after.windows(want.len()).any(|w| w == want));

    let crlf: Vec<u8> = enc
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .flat_map(|l| [l, b"\r\n"].concat())
        .collect();
    let p3 = o.write("crlf.env", &crlf);
    assert!(o.decrypt(&p3).is_err(), "sops refuses a CRLF file");
    let e = ours_decrypt(&crlf, &ids).unwrap_err();
    assert!(
        e.contains("CRLF") && e.contains("sops_lastmodified (line "),
        "{e}"
    );
}

/// Messages sops users recognise, exit codes kept: `set` is silent on success (as `sops set`)
/// unless `--verbose`; a MAC mismatch, a file no identity opens and an unknown datatype are
/// named in sops' words with the line, exit 3 (refused, nothing changed).
#[test]
fn sops_subcommands_speak_like_sops_and_keep_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let key = dir.path().join("key.txt");
    std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let enc =
        komodo_rotate::sops::encrypt_new(b"A=1\nB=2\n", &[id.to_public().to_string()]).unwrap();
    let file = dir.path().join("compose.env");
    std::fs::write(&file, &enc).unwrap();
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut a: Vec<&std::ffi::OsStr> = vec!["sops".as_ref()];
        a.extend(args.iter().map(|s| std::ffi::OsStr::new(*s)));
        a.extend([std::ffi::OsStr::new("--age-key-file"), key.as_os_str()]);
        sops_oracle::ours(&a, stdin, &[])
    };
    let f = file.to_str().unwrap();
    let out = run(&["set", f, "A"], Some(b"hunter2\n"));
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "set is silent"
    );
    let out = run(&["set", "--verbose", f, "A"], Some(b"hunter3\n"));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("set A in") && !err.contains("hunter3"),
        "{err}"
    );

    // MAC mismatch: a clear value appended by hand (it counts in the MAC).
    let good = std::fs::read(&file).unwrap();
    let tampered = [&b"C_unencrypted=x\n"[..], &good].concat();
    std::fs::write(&file, &tampered).unwrap();
    let out = run(&["decrypt", f], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("MAC mismatch") && err.contains("line "),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // Unknown datatype in sops_mac.
    let text = String::from_utf8(good.clone()).unwrap();
    let bad = text
        .lines()
        .map(|l| {
            if l.starts_with("sops_mac=") {
                l.replace("type:str]", "type:xtr]")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&file, &bad).unwrap();
    let out = run(&["check", f], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("Unknown datatype") && err.contains("sops_mac"),
        "{err}"
    );

    // No identity opens it.
    std::fs::write(&file, &good).unwrap();
    let other = age::x25519::Identity::generate();
    std::fs::write(&key, format!("{}\n", other.to_string().expose_secret())).unwrap();
    let out = run(&["decrypt", f], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("Failed to get the data key required to decrypt the SOPS file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), good, "nothing changed");
}
