//! mongod's command line, as the test server takes it: `--opt value` and `--opt=value`, switches
//! without a value, a leading `mongod` word (what the official image's entrypoint accepts). The
//! options the server implements change its configuration; tuning and logging options it has no
//! use for (cache size, log path, journal, ...) are accepted and reported so they can be named
//! once in its log; options whose meaning it does not implement (replica sets, sharding, TLS,
//! key files, a config file, forking) are refused with mongod's own words for an option it does
//! not know, so a compose file that needs them fails loudly instead of running something else.

use super::ServerConfig;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Options accepted without effect that take a value.
const IGNORED_WITH_VALUE: [&str; 24] = [
    "--wiredTigerCacheSizeGB",
    "--wiredTigerJournalCompressor",
    "--wiredTigerCollectionBlockCompressor",
    "--wiredTigerIndexPrefixCompression",
    "--logpath",
    "--syslogFacility",
    "--timeStampFormat",
    "--pidfilepath",
    "--unixSocketPrefix",
    "--filePermissions",
    "--maxConns",
    "--slowms",
    "--slowOpSampleRate",
    "--profile",
    "--oplogSize",
    "--storageEngine",
    "--setParameter",
    "--journalCommitInterval",
    "--syncdelay",
    "--networkMessageCompressors",
    "--outputConfig",
    "--transitionToAuth",
    "--clusterIpSourceAllowlist",
    "--redactClientLogData",
];

/// Switches accepted without effect.
const IGNORED_SWITCHES: [&str; 12] = [
    "--logappend",
    "--nounixsocket",
    "--ipv6",
    "--journal",
    "--nojournal",
    "--directoryperdb",
    "--wiredTigerDirectoryForIndexes",
    "--noIndexBuildRetry",
    "--notablescan",
    "--cpu",
    "--syslog",
    "--enableFreeMonitoring",
];

/// mongod options whose meaning the test server does not implement: refused.
const REFUSED: [&str; 16] = [
    "--replSet",
    "--replSetName",
    "--shardsvr",
    "--configsvr",
    "--keyFile",
    "--clusterAuthMode",
    "--config",
    "-f",
    "--fork",
    "--tlsMode",
    "--sslMode",
    "--tlsCertificateKeyFile",
    "--sslPEMKeyFile",
    "--enableMajorityReadConcern",
    "--repair",
    "--upgrade",
];

/// The parsed command line: the configuration, and the accepted options it ignores (in the
/// order given, each named once, with its value when it has one).
#[derive(Debug)]
pub struct Parsed {
    pub cfg: ServerConfig,
    pub ignored: Vec<String>,
    pub help: bool,
}

fn bad(msg: String) -> String {
    format!("Error parsing command line: {msg}\ntry 'mongod --help' for more information")
}

fn invalid(value: &str, opt: &str) -> String {
    bad(format!(
        "the argument ('{value}') for option '{opt}' is invalid"
    ))
}

/// Parses mongod-style arguments over `base` (the container's defaults).
pub fn parse(base: ServerConfig, args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut cfg = base;
    let mut ignored: Vec<String> = Vec::new();
    let mut help = false;
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| a == "mongod") {
        args.next();
    }
    let mut host: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--bind" | "--data-dir" | "--dbpath" | "--port" | "--bind_ip"
        ) || IGNORED_WITH_VALUE.contains(&flag.as_str());
        let switch = matches!(
            flag.as_str(),
            "--test-controls"
                | "--auth"
                | "--noauth"
                | "--quiet"
                | "--bind_ip_all"
                | "-h"
                | "--help"
        ) || IGNORED_SWITCHES.contains(&flag.as_str())
            || is_verbosity(&flag);
        if REFUSED.contains(&flag.as_str()) || !(takes_value || switch) {
            if !flag.starts_with('-') {
                return Err(bad(format!(
                    "too many positional options have been specified on the command line ('{a}')"
                )));
            }
            return Err(bad(format!("unrecognised option '{flag}'")));
        }
        let value = if takes_value {
            match inline.or_else(|| args.next()) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    return Err(bad(format!(
                        "the required argument for option '{flag}' is missing"
                    )))
                }
            }
        } else {
            if inline.is_some() && !is_verbosity(&flag) {
                return Err(bad(format!("option '{flag}' does not take any arguments")));
            }
            None
        };
        let v = value.as_deref().unwrap_or("");
        match flag.as_str() {
            "--bind" => {
                cfg.bind = v.parse().map_err(|_| invalid(v, &flag))?;
                host = None;
                port = None;
            }
            "--data-dir" | "--dbpath" => cfg.data_dir = PathBuf::from(v),
            "--port" => port = Some(v.parse().map_err(|_| invalid(v, &flag))?),
            "--bind_ip" => {
                // One listener only: a list of addresses would be a promise not kept.
                let ip = match v {
                    "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    other => other.parse().map_err(|_| invalid(v, &flag))?,
                };
                host = Some(ip);
            }
            "--bind_ip_all" => host = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            "--test-controls" => cfg.test_controls = true,
            "--auth" => cfg.auth = Some(true),
            "--noauth" => cfg.auth = Some(false),
            "--quiet" => cfg.quiet = true,
            "-h" | "--help" => help = true,
            _ => {
                let named = match &value {
                    Some(v) => format!("{flag} {v}"),
                    None => flag.clone(),
                };
                if !ignored.contains(&named) {
                    ignored.push(named);
                }
            }
        }
    }
    if host.is_some() || port.is_some() {
        cfg.bind = SocketAddr::new(
            host.unwrap_or(cfg.bind.ip()),
            port.unwrap_or(cfg.bind.port()),
        );
    }
    Ok(Parsed { cfg, ignored, help })
}

/// `-v`, `-vv`, ..., `--verbose` (optionally `--verbose=vvv`).
fn is_verbosity(flag: &str) -> bool {
    flag == "--verbose" || (flag.len() > 1 && flag[1..].chars().all(|c| c == 'v'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ServerConfig {
        let mut c = ServerConfig::new("/data/db");
        c.bind = SocketAddr::from(([0, 0, 0, 0], 27017));
        c
    }

    fn run(args: &[&str]) -> Result<Parsed, String> {
        parse(base(), args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn komodo_official_command_line_runs_and_names_what_it_ignores() {
        let p = run(&["--quiet", "--wiredTigerCacheSizeGB", "0.25"]).unwrap();
        assert!(p.cfg.quiet);
        assert_eq!(p.ignored, ["--wiredTigerCacheSizeGB 0.25"]);
        assert_eq!(p.cfg.bind, SocketAddr::from(([0, 0, 0, 0], 27017)));
        // The same with `=` and the entrypoint's leading `mongod`.
        let p = run(&["mongod", "--quiet", "--wiredTigerCacheSizeGB=0.25"]).unwrap();
        assert_eq!(p.ignored, ["--wiredTigerCacheSizeGB 0.25"]);
    }

    #[test]
    fn both_value_syntaxes_set_the_same_configuration() {
        for args in [
            vec![
                "--dbpath",
                "/x",
                "--port",
                "27018",
                "--bind_ip",
                "127.0.0.1",
            ],
            vec!["--dbpath=/x", "--port=27018", "--bind_ip=127.0.0.1"],
        ] {
            let p = run(&args).unwrap();
            assert_eq!(p.cfg.data_dir, PathBuf::from("/x"));
            assert_eq!(p.cfg.bind, SocketAddr::from(([127, 0, 0, 1], 27018)));
            assert!(p.ignored.is_empty());
        }
        let p = run(&["--bind_ip_all", "--port", "1"]).unwrap();
        assert_eq!(p.cfg.bind, SocketAddr::from(([0, 0, 0, 0], 1)));
    }

    #[test]
    fn tuning_and_logging_options_are_named_once() {
        let p = run(&[
            "--logpath",
            "/var/log/m.log",
            "--logappend",
            "--bind_ip_all",
            "--logappend",
            "-vv",
            "--setParameter",
            "a=1",
        ])
        .unwrap();
        assert_eq!(
            p.ignored,
            [
                "--logpath /var/log/m.log",
                "--logappend",
                "-vv",
                "--setParameter a=1"
            ]
        );
    }

    #[test]
    fn options_it_does_not_implement_are_refused_in_mongods_words() {
        for (args, word) in [
            (vec!["--replSet", "rs0"], "--replSet"),
            (vec!["--replSet=rs0"], "--replSet"),
            (vec!["--keyFile", "/k"], "--keyFile"),
            (vec!["--fork"], "--fork"),
            (vec!["--wiredTigerCacheSize", "1"], "--wiredTigerCacheSize"),
            (vec!["--quiet", "--bogus"], "--bogus"),
        ] {
            let e = run(&args).unwrap_err();
            assert_eq!(
                e.lines().next().unwrap(),
                format!("Error parsing command line: unrecognised option '{word}'"),
                "{args:?}"
            );
        }
    }

    /// As mongod: access control only with `--auth` (`None` leaves it to the image's rule,
    /// on exactly when the root user's init variables are set: `rescue --reset-auth`'s
    /// throw-away has none and drops `--auth`, so it runs without).
    #[test]
    fn access_control_is_on_only_when_asked() {
        assert_eq!(
            run(&["--quiet", "--wiredTigerCacheSizeGB", "0.25"])
                .unwrap()
                .cfg
                .auth,
            None
        );
        assert_eq!(run(&["--auth"]).unwrap().cfg.auth, Some(true));
        assert_eq!(run(&["--noauth"]).unwrap().cfg.auth, Some(false));
    }

    #[test]
    fn missing_and_bad_values_are_refused() {
        let e = run(&["--wiredTigerCacheSizeGB"]).unwrap_err();
        assert!(e.starts_with("Error parsing command line: the required argument for option '--wiredTigerCacheSizeGB' is missing"), "{e}");
        let e = run(&["--port", "x"]).unwrap_err();
        assert!(
            e.contains("the argument ('x') for option '--port' is invalid"),
            "{e}"
        );
        let e = run(&["--bind_ip", "a,b"]).unwrap_err();
        assert!(e.contains("for option '--bind_ip' is invalid"), "{e}");
        let e = run(&["--quiet=1"]).unwrap_err();
        assert!(e.contains("does not take any arguments"), "{e}");
        let e = run(&["stray"]).unwrap_err();
        assert!(e.contains("too many positional options"), "{e}");
    }
}
