//! Value expressions: what a step's `set` maps a name to. Steps are plain data and never carry a
//! secret, so they name values instead: `new`, `old`, a comma list of those (`old,new`: the
//! overlap of a two-key rollout), or `text:LITERAL` for a non-secret literal such as the
//! `${KOMODO_PASSKEY}` link a compose.env may hold.

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sops::Identities;
use crate::txn::sealed;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

/// The old and new value of the secret being rotated. Sealed in the journal, never printed.
pub struct Staged {
    pub old: Secret,
    pub new: Secret,
}

impl Staged {
    pub fn seal(&self, recipients: &[String]) -> Result<String> {
        let body = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "old": self.old.expose(),
                "new": self.new.expose(),
            }))
            .map_err(|e| Error::Precondition(format!("cannot serialise staged secrets: {e}")))?,
        );
        sealed::seal(&body, recipients).map_err(|e| Error::Precondition(e.to_string()))
    }

    pub fn open(armored: &str, ids: &Identities) -> Result<Staged> {
        let bytes = sealed::open(armored, ids)
            .map_err(|e| Error::Precondition(format!("journal secrets: {e}")))?;
        #[derive(serde::Deserialize)]
        struct Pair {
            old: String,
            new: String,
        }
        let p: Pair = serde_json::from_slice(bytes.expose_secret()).map_err(|_| {
            Error::Precondition("journal secrets are not in the expected form".into())
        })?;
        Ok(Staged {
            old: Secret::new(p.old),
            new: Secret::new(p.new),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    New,
    Old,
    /// A comma-joined list, no spaces (Komodo's list variables are split without trimming).
    List(Vec<Expr>),
    Text(String),
}

impl Expr {
    pub fn parse(s: &str) -> Result<Expr> {
        if let Some(t) = s.strip_prefix("text:") {
            return Ok(Expr::Text(t.into()));
        }
        match s {
            "new" => Ok(Expr::New),
            "old" => Ok(Expr::Old),
            _ if s.contains(',') => s
                .split(',')
                .map(|p| match p {
                    "new" => Ok(Expr::New),
                    "old" => Ok(Expr::Old),
                    _ => Err(bad(s)),
                })
                .collect::<Result<Vec<_>>>()
                .map(Expr::List),
            _ => Err(bad(s)),
        }
    }

    pub fn eval(&self, staged: &Staged) -> Secret {
        match self {
            Expr::New => staged.new.clone(),
            Expr::Old => staged.old.clone(),
            Expr::Text(t) => Secret::new(t.clone()),
            Expr::List(items) => {
                let mut out = Zeroizing::new(String::new());
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(e.eval(staged).expose());
                }
                Secret::new(std::mem::take(&mut *out))
            }
        }
    }
}

fn bad(s: &str) -> Error {
    Error::Precondition(format!(
        "step value expression {s:?} is not one of new, old, a comma list of them, text:LITERAL"
    ))
}

/// Evaluates every entry of a step's `set`.
pub fn eval_set(
    set: &std::collections::BTreeMap<String, String>,
    staged: &Staged,
) -> Result<Vec<(String, Secret)>> {
    set.iter()
        .map(|(k, e)| Ok((k.clone(), Expr::parse(e)?.eval(staged))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged() -> Staged {
        Staged {
            old: Secret::new("O1".into()),
            new: Secret::new("N2".into()),
        }
    }

    #[test]
    fn expressions_evaluate_without_spaces() {
        let s = staged();
        assert_eq!(Expr::parse("new").unwrap().eval(&s).expose(), "N2");
        assert_eq!(Expr::parse("old").unwrap().eval(&s).expose(), "O1");
        assert_eq!(Expr::parse("old,new").unwrap().eval(&s).expose(), "O1,N2");
        assert_eq!(
            Expr::parse("text:${KOMODO_PASSKEY}")
                .unwrap()
                .eval(&s)
                .expose(),
            "${KOMODO_PASSKEY}"
        );
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for bad in ["", "NEW", "old, new", "new,", "secret"] {
            let e = Expr::parse(bad).unwrap_err().to_string();
            assert!(e.contains("value expression"), "{e}");
        }
    }
}
