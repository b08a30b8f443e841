//! `docker::compose_value` against the real `docker-compose` 1.29 (Debian's, the rehearsal
//! stack's): seeded random compose.env files (quotes, inline comments, escapes, `$`, `${VAR}`
//! references forward and back, blanks), each handed to compose as a service's `env_file`; the
//! env of the container compose creates is the truth. Every value the module reads must be
//! exactly what the container got; what it refuses is not compared (compose v2 reads those
//! differently, or they depend on compose's own environment: the module's docs say which).
//!
//! `KOMODO_ROTATE_COMPOSE_SEED=<n>` replays a run, `=random` explores; unset: a fixed gate seed.
//! Under `CI=true` a missing docker or docker-compose fails the test instead of skipping it.

use komodo_rotate::docker::compose_value;
use std::io::Write;
use std::process::{Command, Stdio};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
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
}

const GATE_SEED: u64 = 0x6b6f_6d6f_646f_2d76;

fn seed() -> u64 {
    match std::env::var("KOMODO_ROTATE_COMPOSE_SEED").as_deref() {
        Err(_) => GATE_SEED,
        Ok("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        Ok(s) => s
            .trim()
            .parse()
            .expect("KOMODO_ROTATE_COMPOSE_SEED: a u64 or `random`"),
    }
}

const KEYS_PER_FILE: usize = 10;
const FILES: usize = 40;

/// Pieces of values: mostly what compose.env files hold (text, blanks, `#`, quotes inside,
/// references to the first keys, which most lines follow)...
const COMMON: &[&str] = &[
    "QuotedPw123",
    "p",
    "x9",
    "abc",
    "-_.",
    "é",
    "#",
    "# c",
    " ",
    "'",
    "=",
    ":",
    "{",
    "}",
    "${K0}",
    "${K1}",
    "${K2}",
    "\\",
    "\\n",
];
/// ...and every byte sequence the compose readers treat specially.
const TRICKY: &[&str] = &[
    " #x",
    "\t",
    "\"",
    "\\\\",
    "\\\"",
    "\\t",
    "\\'",
    "\\$",
    "$",
    "$$",
    "$K",
    "${",
    "${K7}",
    "${NOPE_UNSET}",
    "${K1:-d}",
    "\t#t",
];

fn random_value(r: &mut Rng) -> String {
    let mut body = String::new();
    for _ in 0..1 + r.below(4) {
        let from = if r.chance(80) { COMMON } else { TRICKY };
        body.push_str(from[r.below(from.len())]);
    }
    let mut v = match r.below(10) {
        0..=2 => format!("\"{body}\""),
        3..=4 => format!("'{body}'"),
        _ => body,
    };
    if r.chance(25) {
        v.push_str(if r.chance(50) { " # note" } else { "  #x" });
    }
    if r.chance(15) {
        v.insert(0, ' ');
    }
    v
}

fn need(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!("compose_values: needs {tool} (scripts/setup-test-env)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIP {msg}");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An image with nothing in it: compose only has to create (never start) its containers.
fn empty_image() -> String {
    let tag = "krt-compose-values-empty:1".to_string();
    let mut child = Command::new("docker")
        .args(["import", "-", &tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // An empty tar archive: two zero blocks.
    child.stdin.take().unwrap().write_all(&[0u8; 1024]).unwrap();
    assert!(child.wait().unwrap().success(), "docker import");
    tag
}

struct Down(String, std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["-p", &self.0, "-f"])
            .arg(self.1.join("compose.yaml"))
            .args(["down", "--remove-orphans"])
            .output();
    }
}

#[test]
fn compose_values_match_what_docker_compose_1_29_hands_the_container() {
    if !need("docker", &["version"]) || !need("docker-compose", &["version"]) {
        return;
    }
    let seed = seed();
    eprintln!("compose_values: seed {seed} (KOMODO_ROTATE_COMPOSE_SEED replays it)");
    let mut r = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let image = empty_image();
    let project = format!("krt-values-{}", std::process::id());
    let _down = Down(project.clone(), dir.path().to_path_buf());

    // One service per file, so one `up --no-start` creates them all.
    let mut files: Vec<Vec<(String, String)>> = Vec::new();
    let mut yaml = String::from("version: \"3\"\nservices:\n");
    for f in 0..FILES {
        let lines: Vec<(String, String)> = (0..KEYS_PER_FILE)
            .map(|k| (format!("K{k}"), random_value(&mut r)))
            .collect();
        let mut text = String::new();
        for (k, v) in &lines {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(dir.path().join(format!("f{f}.env")), text).unwrap();
        yaml.push_str(&format!(
            "  s{f}:\n    image: {image}\n    command: [\"/none\"]\n    env_file: ./f{f}.env\n"
        ));
        files.push(lines);
    }
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    run(Command::new("docker-compose")
        .args(["-p", &project, "-f"])
        .arg(dir.path().join("compose.yaml"))
        .args(["up", "--no-start"])
        .env_remove("NOPE_UNSET")
        .env_remove("K1"));

    let (mut read, mut refused, mut mismatches) = (0, 0, Vec::new());
    let (mut quoted_read, mut comment_read, mut ref_read) = (0, 0, 0);
    for (f, lines) in files.iter().enumerate() {
        let container = format!("{project}_s{f}_1");
        let env_json = run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            &container,
        ]));
        let env: Vec<String> = serde_json::from_str(env_json.trim()).unwrap();
        let got = |k: &str| {
            env.iter()
                .rev()
                .find_map(|e| e.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        let entries: Vec<compose_value::Entry> = lines
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        for (k, raw) in lines {
            match compose_value::value(&entries, k) {
                Ok(Some(v)) => {
                    read += 1;
                    let t = raw.trim_start();
                    quoted_read += usize::from(t.starts_with('"') || t.starts_with('\''));
                    comment_read += usize::from(raw.contains(" #"));
                    ref_read += usize::from(raw.contains("${K"));
                    if got(k).as_deref() != Some(v.expose()) {
                        mismatches.push(format!(
                            "file f{f}.env {k}={raw:?}: module {:?}, container {:?}",
                            v.expose(),
                            got(k)
                        ));
                    }
                }
                Ok(None) => panic!("{k} is in the file"),
                Err(e) => {
                    refused += 1;
                    assert_eq!(e.key, *k);
                }
            }
        }
    }
    eprintln!(
        "compose_values: {read} read ({quoted_read} quoted, {comment_read} with a comment, {ref_read} with a reference), {refused} refused"
    );
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} of {read} values differ from docker-compose 1.29:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The run must exercise what it claims to, not only refuse.
    assert!(read >= FILES * KEYS_PER_FILE / 4, "only {read} read");
    assert!(quoted_read >= 20 && comment_read >= 10 && ref_read >= 10);
}
