//! Issue 22: the Debian package from `scripts/package`, installed with dpkg into a clean Debian
//! bookworm made from Debian's packages (testcontainers/debian-image), and removed again. Every
//! check is made inside that system with its own tools (dpkg, man-db, bash, systemd-analyze).

mod package_support;

use package_support::*;
use std::collections::BTreeMap;

/// The sections a script printed after `=== NAME` lines.
fn sections(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut cur = String::new();
    for l in out.lines() {
        if let Some(name) = l.strip_prefix("=== ") {
            cur = name.to_string();
            m.insert(cur.clone(), String::new());
        } else if let Some(s) = m.get_mut(&cur) {
            s.push_str(l);
            s.push('\n');
        }
    }
    m
}

fn setup(test: &str) -> Option<(Built, String)> {
    let built = built(test, &["DEB", "VERSION", "COMMIT"])?;
    if !engine(test) {
        return None;
    }
    // testcontainers/debian-images.list's `package`: minbase plus man-db for `man -w` and systemd
    // for `systemd-analyze verify` and `systemctl is-enabled`. Nothing else the package needs: its
    // Depends must be in minbase already.
    let image = debian_image("package");
    Some((built, image))
}

/// systemd-analyze's lines that are about the host (a container without a running systemd),
/// not about the units; every other line fails.
const HOST_ONLY: [&str; 3] = [
    "System has not been booted with systemd",
    "Failed to connect to bus",
    "Failed to connect to system scope bus",
];

#[test]
fn deb_installs_on_a_clean_bookworm() {
    let test = "deb_installs_on_a_clean_bookworm";
    let Some((built, image)) = setup(test) else {
        return;
    };
    let deb = built.get("DEB");
    let version = built.get("VERSION");

    // The package's own Depends: only the shared libraries the binary links.
    let f = std::process::Command::new("dpkg-deb")
        .args(["-f", deb, "Depends", "Version"])
        .output()
        .expect("dpkg-deb -f");
    let fields = String::from_utf8_lossy(&f.stdout).to_string();
    assert!(f.status.success(), "dpkg-deb -f {deb}: {}", text(&f));
    assert!(fields.contains(&format!("Version: {version}")), "{fields}");
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends in {deb}: {fields}"));
    for d in depends.split(',').map(str::trim) {
        assert!(
            d.starts_with("libc6 ") || d.starts_with("libgcc-s1 "),
            "Depends carries {d:?}, not a library the binary links: {depends}"
        );
    }

    let script = r#"
cfg_before=$(mkdir -p /etc/komodo-rotate && printf 'compose_env = "/opt/komodo/compose.env"\n' >/etc/komodo-rotate/config.toml && chmod 0600 /etc/komodo-rotate/config.toml && sha256sum /etc/komodo-rotate/config.toml && stat -c %a /etc/komodo-rotate/config.toml)
dpkg -i /tmp/k.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
echo "=== config-kept"
[ "$cfg_before" = "$(sha256sum /etc/komodo-rotate/config.toml && stat -c %a /etc/komodo-rotate/config.toml)" ] && echo yes
echo "=== version"
komodo-rotate --version
echo "=== package-version"
dpkg-query -W -f='${Version}\n' komodo-rotate
echo "=== man"
man -w komodo-rotate
MANPAGER=cat MANWIDTH=100 man komodo-rotate 2>/dev/null | grep -c 'EXIT STATUS' || true
echo "=== completions"
for f in /usr/share/bash-completion/completions/komodo-rotate /usr/share/zsh/vendor-completions/_komodo-rotate /usr/share/fish/vendor_completions.d/komodo-rotate.fish; do
  grep -q salvage-env "$f" && echo "$f"
done
echo "=== bash-complete"
source /usr/share/bash-completion/completions/komodo-rotate && complete -p komodo-rotate
echo "=== units"
ls /lib/systemd/system | grep komodo-rotate
echo "=== enabled"
for u in komodo-rotate.timer komodo-rotate-verify.timer komodo-rotate.service komodo-rotate-verify.service; do
  echo "$u $(systemctl is-enabled "$u" 2>&1 || true)"
done
find /etc/systemd -name 'komodo-rotate*'
echo "=== state"
stat -c '%a %U %F' /var/lib/komodo-rotate
echo "=== docs"
ls /usr/share/doc/komodo-rotate /usr/share/doc/komodo-rotate/runbooks /usr/share/doc/komodo-rotate/examples
grep -c '^compose_env' /usr/share/doc/komodo-rotate/examples/config.toml
echo "=== analyze"
# The units require docker.service, which every Komodo host has (docker.io or Docker's own
# packages, so the package cannot depend on one): a stand-in for it.
printf '[Unit]\nDescription=stand-in for the host Docker engine\n[Service]\nExecStart=/bin/true\n' >/etc/systemd/system/docker.service
systemd-analyze verify --man=no /lib/systemd/system/komodo-rotate*.service /lib/systemd/system/komodo-rotate*.timer 2>&1 && echo "exit 0" || echo "exit $?"
"#;
    let o = run_script(&image, &["-v", &format!("{deb}:/tmp/k.deb:ro")], script);
    assert!(o.status.success(), "install script: {}", text(&o));
    let s = sections(&String::from_utf8_lossy(&o.stdout));
    let sec = |k: &str| s.get(k).map(String::as_str).unwrap_or("").to_string();

    assert_eq!(
        sec("config-kept").trim(),
        "yes",
        "an existing config was touched"
    );
    let commit = built.get("COMMIT");
    let v = sec("version");
    assert!(
        v.starts_with("komodo-rotate ") && v.contains(&format!("(commit {commit})")),
        "--version {v:?} lacks commit {commit}"
    );
    assert!(
        !v.contains("failpoints"),
        "a release build without failpoints: {v}"
    );
    assert_eq!(sec("package-version").trim(), version);
    let man = sec("man");
    assert!(
        man.starts_with("/usr/share/man/man1/komodo-rotate.1.gz\n"),
        "man -w: {man}"
    );
    assert_eq!(
        man.lines().nth(1),
        Some("1"),
        "the rendered page has EXIT STATUS: {man}"
    );
    assert_eq!(
        sec("completions").lines().count(),
        3,
        "{}",
        sec("completions")
    );
    assert!(
        sec("bash-complete").contains("komodo-rotate"),
        "{}",
        sec("bash-complete")
    );
    let units: Vec<&str> = s["units"].lines().collect();
    assert_eq!(
        units,
        [
            "komodo-rotate-verify.service",
            "komodo-rotate-verify.timer",
            "komodo-rotate.service",
            "komodo-rotate.timer"
        ]
    );
    let enabled = sec("enabled");
    for l in enabled.lines() {
        // The timers have an [Install] section (disabled until enabled), the services none
        // (static: started by their timers).
        assert!(
            l.ends_with(" disabled") || l.ends_with(" static"),
            "the install enabled something: {enabled}"
        );
    }
    assert_eq!(enabled.lines().count(), 4, "{enabled}");
    assert_eq!(sec("state").trim(), "700 root directory");
    let docs = sec("docs");
    for f in [
        "README.md",
        "copyright",
        "runbooks",
        "examples",
        "interrupted-run.md",
        "scheduled-rotation.md",
        "pre-rotation-check.md",
        "config.toml",
        "cron",
    ] {
        assert!(
            docs.lines().any(|l| l == f),
            "/usr/share/doc/komodo-rotate lacks {f}: {docs}"
        );
    }
    assert!(
        docs.ends_with("1\n"),
        "examples/config.toml sets compose_env: {docs}"
    );

    let analyze = sec("analyze");
    let own: Vec<&str> = analyze
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("exit "))
        .filter(|l| !HOST_ONLY.iter().any(|h| l.contains(h)))
        .collect();
    assert!(
        own.is_empty() && analyze.contains("exit 0"),
        "systemd-analyze verify of the installed units:\n{analyze}"
    );
}

#[test]
fn deb_removal_leaves_only_the_state_dir() {
    let test = "deb_removal_leaves_only_the_state_dir";
    let Some((built, image)) = setup(test) else {
        return;
    };
    let deb = built.get("DEB");
    // Every path (and its type and mode) before the install and after the removal; in between a
    // run's state lands in /var/lib/komodo-rotate.
    let script = r#"
list() { find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /var/lib/dpkg -o -path /var/log -o -path /var/cache -o -path /run \) -prune -o -printf '%p %y %m\n' | sort; }
list >/tmp/before
dpkg -i /tmp/k.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
printf '{"run":"x"}\n' >/var/lib/komodo-rotate/audit.log
dpkg -r komodo-rotate >>/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
list >/tmp/after
echo "=== diff"
diff /tmp/before /tmp/after || true
echo "=== status"
dpkg-query -W -f='${db:Status-Status}\n' komodo-rotate 2>&1 || true
echo "=== mentions"
grep -rls komodo-rotate /etc /usr /lib 2>/dev/null || true
"#;
    let o = run_script(&image, &["-v", &format!("{deb}:/tmp/k.deb:ro")], script);
    assert!(o.status.success(), "remove script: {}", text(&o));
    let s = sections(&String::from_utf8_lossy(&o.stdout));
    let diff: Vec<&str> = s["diff"]
        .lines()
        .filter(|l| l.starts_with('<') || l.starts_with('>'))
        .collect();
    assert_eq!(
        diff,
        [
            "> /var/lib/komodo-rotate d 700",
            "> /var/lib/komodo-rotate/audit.log f 644"
        ],
        "after dpkg -r, the system differs from before the install by more than the state dir"
    );
    let status = s["status"].trim();
    assert!(
        status == "not-installed" || status.contains("no packages found"),
        "{status}"
    );
    assert_eq!(
        s["mentions"].trim(),
        "",
        "files naming komodo-rotate remain"
    );
}
