//! The auth options of a `[mongo] uri` (`authSource=`, `authMechanism=`), read as the driver
//! reads them (names without regard to case, values percent-decoded) and taken out of the URI:
//! the driver refuses them in a URI that names no user, and ours never names one.

/// `uri` without its auth options (`authSource`, `authMechanism`): they are ours to apply,
/// since the driver refuses them in a URI that names no user.
pub(super) fn without_auth_options(uri: &str) -> String {
    let Some((head, query)) = uri.split_once('?') else {
        return uri.to_owned();
    };
    let kept: Vec<&str> = query
        .split(['&', ';'])
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or("");
            !(k.eq_ignore_ascii_case("authSource") || k.eq_ignore_ascii_case("authMechanism"))
        })
        .filter(|kv| !kv.is_empty())
        .collect();
    match kept.is_empty() {
        true => head.to_owned(),
        false => format!("{head}?{}", kept.join("&")),
    }
}

/// The value of URI option `name` (matched without regard to case, as the driver does), if any.
pub(super) fn uri_option(rest: &str, name: &str) -> Option<String> {
    let query = rest.split_once('?')?.1;
    query
        .split(['&', ';'])
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| percent_decode(v))
        .next_back()
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
