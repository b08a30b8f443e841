//! `[periphery]`: peripheries the local engine cannot reach. Komodo v1 core calls every Server
//! (periphery) with one passkey; a periphery on another host keeps its own `PERIPHERY_PASSKEYS`
//! (its env or `/etc/komodo/periphery.config.toml`), which a rotation on this host cannot
//! change. They are listed here so a passkey rotation can name them:
//!
//! ```toml
//! [[periphery.remote]]
//! name = "build-box"             # as the Server is named in Komodo
//! address = "https://10.0.0.7:8120"
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Periphery {
    /// Peripheries on other hosts (`[[periphery.remote]]`).
    #[serde(default)]
    pub remote: Vec<RemotePeriphery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePeriphery {
    pub name: String,
    /// `host:port` or `http(s)://host:port`; informational (printed in warnings), never called.
    pub address: String,
}

impl RemotePeriphery {
    /// `name (address)`, for warnings.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.address)
    }
}

impl Periphery {
    /// Checks the entries: each name and address non-empty, printable and without spaces,
    /// names unique, and no credentials inside an address (it is printed in warnings).
    pub fn check(&self) -> Result<(), String> {
        let mut seen: Vec<&str> = Vec::new();
        for (i, r) in self.remote.iter().enumerate() {
            let at = format!("periphery.remote[{i}]");
            for (field, v) in [("name", &r.name), ("address", &r.address)] {
                if v.trim().is_empty() {
                    return Err(format!("{at}.{field} is empty"));
                }
                if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(format!("{at}.{field} holds a space or control character"));
                }
            }
            let authority = r
                .address
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(&r.address)
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default();
            if authority.contains('@') {
                // Never echo the address: what precedes '@' may be a credential.
                return Err(format!(
                    "{at}.address holds user information ('@'); give host:port only"
                ));
            }
            if seen.contains(&r.name.as_str()) {
                return Err(format!("{at}.name {:?} is listed twice", r.name));
            }
            seen.push(&r.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Periphery, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            #[serde(default)]
            periphery: Periphery,
        }
        let d: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        d.periphery.check()?;
        Ok(d.periphery)
    }

    #[test]
    fn remote_entries_are_read_in_order() {
        let p = parse(
            "[[periphery.remote]]\nname = \"build\"\naddress = \"https://10.0.0.7:8120\"\n\
             [[periphery.remote]]\nname = \"nas\"\naddress = \"nas.lan:8120\"\n",
        )
        .unwrap();
        assert_eq!(p.remote.len(), 2);
        assert_eq!(p.remote[0].describe(), "build (https://10.0.0.7:8120)");
        assert_eq!(p.remote[1].name, "nas");
        assert!(parse("").unwrap().remote.is_empty());
    }

    #[test]
    fn bad_entries_are_refused_by_field_without_echoing_credentials() {
        for (body, needle) in [
            (
                "name = \"\"\naddress = \"a:1\"",
                "periphery.remote[0].name is empty",
            ),
            (
                "name = \"a b\"\naddress = \"a:1\"",
                "periphery.remote[0].name holds a space",
            ),
            (
                "name = \"a\"\naddress = \" \"",
                "periphery.remote[0].address is empty",
            ),
            ("name = \"a\"\naddress = \"a:1\"\nport = 3", "port"),
            ("name = \"a\"", "address"),
        ] {
            let e = parse(&format!("[[periphery.remote]]\n{body}\n")).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e =
            parse("[[periphery.remote]]\nname = \"a\"\naddress = \"https://u:hunter2@h:8120\"\n")
                .unwrap_err();
        assert!(
            e.contains("user information") && !e.contains("hunter2"),
            "{e}"
        );
        let e = parse(
            "[[periphery.remote]]\nname = \"a\"\naddress = \"h:1\"\n\
             [[periphery.remote]]\nname = \"a\"\naddress = \"h:2\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("periphery.remote[1].name \"a\" is listed twice"),
            "{e}"
        );
    }

    #[test]
    fn the_config_reads_remotes_and_a_bad_one_is_a_usage_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compose.env"), "X=1\n").unwrap();
        let path = d.path().join("komodo-rotate.toml");
        let base = "compose_env = \"compose.env\"\n[[periphery.remote]]\nname = \"nas\"\n";
        let cfg =
            super::super::Config::parse(&format!("{base}address = \"nas:8120\"\n"), &path).unwrap();
        assert_eq!(cfg.periphery.remote[0].name, "nas");
        let e = super::super::Config::parse(&format!("{base}address = \"\"\n"), &path).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("periphery.remote[0].address"), "{e}");
    }
}
