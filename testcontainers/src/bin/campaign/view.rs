//! The referee's view judged: what counts as drift and as a split, and its printable form
//! (value fingerprints, never values).

use crate::referee::{db_key, env_key_of, fp, Ctr, MongoView, View, SECRET_KEYS};

impl View {
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.as_ref().ok()?.get(key).map(|s| s.as_str())
    }
    pub fn service(&self, s: &str) -> Option<&Ctr> {
        self.containers
            .iter()
            .find(|c| c.service == s && !is_leftover(&c.name))
    }

    /// What the referee calls drift: the planes split, a holder down, a journal pending, the
    /// checkout not publishing compose.env or not pullable. Empty: none.
    pub fn drift(&self) -> Vec<String> {
        let mut d = Vec::new();
        let env = match &self.env {
            Ok(e) => e,
            Err(e) => return vec![format!("compose.env: {e}")],
        };
        match (&self.mongo, env.get(db_key())) {
            (MongoView::Unreachable, _) => d.push("mongo unreachable".into()),
            (MongoView::Accepts(a), Some(v)) if a.as_deref() != Some(v.as_str()) => {
                d.push("mongo rejects compose.env's DB password".into())
            }
            _ => {}
        }
        for c in &self.containers {
            if is_leftover(&c.name) {
                d.push(format!("leftover container {}", c.name));
                continue;
            }
            for (k, v) in &c.env {
                let e = env_key_of(k);
                // `${KEY}` in compose.env (v1's PERIPHERY_PASSKEYS) is interpolated by compose
                // from the same file.
                let want = env.get(e).map(|w| {
                    w.strip_prefix("${")
                        .and_then(|r| r.strip_suffix('}'))
                        .and_then(|r| env.get(r))
                        .unwrap_or(w)
                });
                if want != Some(v) {
                    d.push(if e == k {
                        format!("{} holds another {k} than compose.env", c.name)
                    } else {
                        format!("{} holds another {k} than compose.env's {e}", c.name)
                    });
                }
            }
            if c.service != "mongo" && c.status != "running" {
                d.push(format!("{} is {}", c.name, c.status));
            }
            if c.service == "core" && c.health == "unhealthy" {
                d.push(format!("{} is unhealthy", c.name));
            }
        }
        for s in ["core", "periphery", "mongo"] {
            if self.service(s).is_none() {
                d.push(format!("no {s} container"));
            }
        }
        if self.journal {
            d.push("a journal is pending".into());
        }
        if self.git.env_uncommitted {
            d.push("compose.env differs from HEAD's".into());
        }
        if self.git.unpushed_env > 0 {
            d.push("unpushed commits touch compose.env".into());
        }
        if !self.git.pull_blocked.is_empty() {
            d.push(format!("pull blocked by {:?}", self.git.pull_blocked));
        }
        if !self.git.in_progress.is_empty() {
            d.push(format!("git stopped half way: {:?}", self.git.in_progress));
        }
        d
    }

    /// The planes' values split (a subset of drift: what exit 5 must leave visible).
    pub fn split(&self) -> bool {
        self.drift()
            .iter()
            .any(|d| !d.starts_with("a journal") && !d.starts_with("pull blocked"))
    }

    /// Printable, values as fingerprints.
    pub fn show(&self) -> String {
        let mut s = String::new();
        match &self.env {
            Ok(e) => {
                let vals: Vec<String> = SECRET_KEYS
                    .iter()
                    .filter_map(|k| e.get(*k).map(|v| format!("{k}={}", fp(v))))
                    .collect();
                s += &format!("  compose.env (sops): {}\n", vals.join(" "));
            }
            Err(e) => s += &format!("  compose.env: {e}\n"),
        }
        s += &format!(
            "  mongo (pymongo): {}\n",
            match &self.mongo {
                MongoView::Unreachable => "unreachable".to_string(),
                MongoView::Accepts(Some(v)) => format!("accepts {}", fp(v)),
                MongoView::Accepts(None) => "accepts none of the known values".into(),
            }
        );
        for c in &self.containers {
            let vals: Vec<String> = c
                .env
                .iter()
                .map(|(k, v)| format!("{k}={}", fp(v)))
                .collect();
            s += &format!(
                "  {} [{}] {} {}{} restarts {}: {}\n",
                c.name,
                c.service,
                &c.id.get(..12).unwrap_or(""),
                c.status,
                if c.health.is_empty() {
                    String::new()
                } else {
                    format!("/{}", c.health)
                },
                c.restarts,
                vals.join(" ")
            );
        }
        s += &format!(
            "  git: head {} origin {} behind {} unpushed-env {} env-uncommitted {} blocked {:?} in-progress {:?} status {:?}\n",
            &self.git.head.get(..8).unwrap_or(""),
            &self.git.origin.get(..8).unwrap_or(""),
            self.git.behind,
            self.git.unpushed_env,
            self.git.env_uncommitted,
            self.git.pull_blocked,
            self.git.in_progress,
            self.git.status
        );
        s += &format!(
            "  journal pending: {}, core serving: {}\n  drift: {:?}\n",
            self.journal,
            self.core_serving,
            self.drift()
        );
        s
    }
}

pub fn is_leftover(name: &str) -> bool {
    name.ends_with("-next") || name.ends_with("-prev")
}
