//! verify's rows for the env-only secret kinds: for each kind whose key compose.env holds, one
//! row named after the kind that says whether every container carrying the secret carries
//! compose.env's value. Names only, never a value; values are compared in memory, in constant
//! time. A container holding another value is drift (exit 1): it needs a recreate.

pub use crate::kinds::{EnvOnly, Form, ENV_ONLY_ROWS};
use crate::report::{Matrix, Status};
use crate::secret::Secret;

/// A container as far as this check cares: its name and its env.
pub struct Holder<'a> {
    pub name: &'a str,
    pub env: &'a [(String, Secret)],
}

impl Holder<'_> {
    fn get(&self, key: &str) -> Option<&Secret> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// One row per kind of `kinds` whose key `env` holds (`env` looks a compose.env key up).
pub fn rows(
    kinds: &[EnvOnly],
    env: &dyn Fn(&str) -> Option<Secret>,
    holders: &[Holder<'_>],
    m: &mut Matrix,
) {
    for k in kinds {
        let Some(value) = env(k.key) else { continue };
        let (status, detail) = row(k, &value, env, holders);
        m.push_kind(k.kind, k.kind, status, detail);
    }
}

fn row(
    k: &EnvOnly,
    value: &Secret,
    env: &dyn Fn(&str) -> Option<Secret>,
    holders: &[Holder<'_>],
) -> (Status, String) {
    let mut same = Vec::new();
    let mut differ = Vec::new();
    let mut refuse = Vec::new();
    let mut unread = Vec::new();
    for h in holders {
        for (key, form) in k.carriers {
            let file_key = format!("{key}_FILE");
            if h.get(&file_key).is_some() {
                unread.push(format!("{} reads {file_key}", h.name));
                continue;
            }
            let Some(held) = h.get(key) else { continue };
            let at = format!("{key} in {}", h.name);
            match form {
                Form::Plain if held.ct_eq(value) => same.push(at),
                Form::Plain => differ.push(at),
                Form::List => {
                    if !held.expose().split(',').any(|i| ct_str(i, value)) {
                        refuse.push(at);
                    } else if env(key).is_some_and(|l| !resolved_list(&l, k.key, value).ct_eq(held))
                    {
                        differ.push(at);
                    } else {
                        same.push(at);
                    }
                }
            }
        }
    }
    let mut bad = Vec::new();
    if !refuse.is_empty() {
        bad.push(format!(
            "{} lack compose.env's {} (it would be refused)",
            refuse.join(", "),
            k.key
        ));
    }
    if !differ.is_empty() {
        bad.push(format!(
            "{} differ from compose.env (recreate needed)",
            differ.join(", ")
        ));
    }
    if !bad.is_empty() {
        if !same.is_empty() {
            bad.push(format!("{} match", same.join(", ")));
        }
        return (Status::Drift, bad.join("; "));
    }
    if !unread.is_empty() {
        return (
            Status::Unknown,
            format!(
                "{} (a file verify does not read: not compared){}",
                unread.join(", "),
                if same.is_empty() {
                    String::new()
                } else {
                    format!("; {} match compose.env", same.join(", "))
                }
            ),
        );
    }
    if same.is_empty() {
        return (
            Status::Info,
            format!("{} is in compose.env; no container holds it", k.key),
        );
    }
    (Status::Ok, format!("{} match compose.env", same.join(", ")))
}

fn ct_str(a: &str, b: &Secret) -> bool {
    Secret::new(a.to_owned()).ct_eq(b)
}

/// compose.env's list with items `${KEY}` / `$KEY` (KEY = the kind's key) replaced by `value`,
/// as compose interpolates them.
fn resolved_list(list: &Secret, key: &str, value: &Secret) -> Secret {
    let (braced, bare) = (format!("${{{key}}}"), format!("${key}"));
    let items: Vec<&str> = list
        .expose()
        .split(',')
        .map(|i| {
            if i == braced || i == bare {
                value.expose()
            } else {
                i
            }
        })
        .collect();
    Secret::new(items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[EnvOnly] = &[
        EnvOnly {
            kind: "jwt-secret",
            key: "JWT",
            carriers: &[("JWT", Form::Plain)],
        },
        EnvOnly {
            kind: "passkey",
            key: "PK",
            carriers: &[("PK", Form::Plain), ("PKS", Form::List)],
        },
    ];

    fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, Secret)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
            .collect()
    }

    fn run(compose: &[(&str, &str)], containers: &[(&str, Vec<(String, Secret)>)]) -> Matrix {
        let compose = env_of(compose);
        let env = |k: &str| compose.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let holders: Vec<Holder> = containers
            .iter()
            .map(|(n, e)| Holder { name: n, env: e })
            .collect();
        let mut m = Matrix::default();
        rows(KINDS, &env, &holders, &mut m);
        m
    }

    const SECRETS: [&str; 3] = ["s3cret-jwt-value", "0ther-jwt-value", "passkey-value-1"];

    fn assert_no_value(m: &Matrix) {
        let all = format!("{}{}{}", m.to_text(), m.to_json(), m.to_prometheus(1));
        for s in SECRETS {
            assert!(!all.contains(s), "a value leaked: {all}");
        }
    }

    #[test]
    fn a_holder_with_another_value_is_drift_named_by_kind_and_container() {
        let m = run(
            &[("JWT", SECRETS[0])],
            &[
                ("core", env_of(&[("JWT", SECRETS[1])])),
                ("periphery", env_of(&[("JWT", SECRETS[0])])),
                ("mongo", env_of(&[("OTHER", "x")])),
            ],
        );
        assert_eq!(m.checks.len(), 1, "no compose.env PK: no passkey row");
        let c = &m.checks[0];
        assert_eq!(
            (c.name.as_str(), c.kind.as_deref()),
            ("jwt-secret", Some("jwt-secret"))
        );
        assert_eq!(c.status, Status::Drift);
        assert_eq!(
            c.detail,
            "JWT in core differ from compose.env (recreate needed); JWT in periphery match"
        );
        assert_eq!(m.exit_code(), 1);
        assert_no_value(&m);
    }

    #[test]
    fn all_holders_on_compose_env_value_is_ok_and_no_holder_is_info() {
        let m = run(
            &[("JWT", SECRETS[0])],
            &[
                ("core", env_of(&[("JWT", SECRETS[0])])),
                ("periphery", env_of(&[("JWT", SECRETS[0])])),
            ],
        );
        assert_eq!(m.checks[0].status, Status::Ok);
        assert_eq!(
            m.checks[0].detail,
            "JWT in core, JWT in periphery match compose.env"
        );
        let m = run(&[("JWT", SECRETS[0])], &[("core", env_of(&[]))]);
        assert_eq!(m.checks[0].status, Status::Info);
        assert_eq!(m.exit_code(), 0);
    }

    #[test]
    fn a_file_variant_cannot_be_compared_and_says_so() {
        let m = run(
            &[("JWT", SECRETS[0])],
            &[
                (
                    "core",
                    env_of(&[("JWT_FILE", "/run/secrets/jwt"), ("JWT", SECRETS[1])]),
                ),
                ("periphery", env_of(&[("JWT", SECRETS[0])])),
            ],
        );
        assert_eq!(m.checks[0].status, Status::Unknown);
        assert!(
            m.checks[0].detail.starts_with("core reads JWT_FILE"),
            "{:?}",
            m.checks[0]
        );
        assert_eq!(m.exit_code(), 3);
    }

    #[test]
    fn passkey_lists_must_hold_the_key_and_equal_compose_env_resolved() {
        let pk = SECRETS[2];
        // The link `${PK}` resolves to compose.env's PK: the list equals it.
        let linked = [("PK", pk), ("PKS", "${PK}")];
        let m = run(
            &linked,
            &[
                ("core", env_of(&[("PK", pk)])),
                ("periphery", env_of(&[("PKS", pk)])),
            ],
        );
        assert_eq!(m.checks[0].kind.as_deref(), Some("passkey"));
        assert_eq!(m.checks[0].status, Status::Ok, "{:?}", m.checks[0]);
        // Phase 1 left OLD in the periphery while compose.env is back to the link: drift.
        let m = run(
            &linked,
            &[("periphery", env_of(&[("PKS", &format!("old,{pk}"))]))],
        );
        assert_eq!(m.checks[0].status, Status::Drift);
        assert!(m.checks[0].detail.contains("differ"), "{:?}", m.checks[0]);
        // Mid-rotation compose.env says OLD,NEW literally and the periphery holds it: ok.
        let both = format!("old,{pk}");
        let m = run(
            &[("PK", pk), ("PKS", &both)],
            &[("periphery", env_of(&[("PKS", &both)]))],
        );
        assert_eq!(m.checks[0].status, Status::Ok, "{:?}", m.checks[0]);
        // A list without core's passkey refuses core, whatever compose.env says.
        let m = run(&[("PK", pk)], &[("periphery", env_of(&[("PKS", "a,b")]))]);
        assert_eq!(m.checks[0].status, Status::Drift);
        assert_eq!(
            m.checks[0].detail,
            "PKS in periphery lack compose.env's PK (it would be refused)"
        );
        // No trimming: " pk" is not "pk" (Komodo splits env lists without trimming).
        let m = run(
            &[("PK", pk)],
            &[("periphery", env_of(&[("PKS", &format!("a, {pk}"))]))],
        );
        assert_eq!(m.checks[0].status, Status::Drift);
        assert_no_value(&m);
    }
}
