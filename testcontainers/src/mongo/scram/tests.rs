//! Vectors from research/mongo-wire.md §7 (RFC 5802, RFC 7677, the MongoDB auth spec, SASLprep).

use super::*;

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// Runs a whole server-side exchange with an injected nonce suffix and returns both replies.
fn exchange(
    mech: Mechanism,
    cred: &Credential,
    client_first: &str,
    suffix: &str,
    client_final: &str,
) -> (String, Result<Step, Failed>) {
    let first = parse_client_first(client_first.as_bytes()).unwrap();
    let (mut conv, server_first) =
        Conversation::start(mech, "admin", first, cred, suffix, true).unwrap();
    (
        String::from_utf8(server_first).unwrap(),
        conv.step(client_final.as_bytes()),
    )
}

#[test]
fn rfc5802_sha1_on_the_raw_password() {
    let salt = b64("QSXCR+Q6sek8bf92");
    let cred = derive(Mechanism::Sha1, "pencil", &salt, 4096);
    assert_eq!(B64.encode(&cred.stored_key), "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
    assert_eq!(B64.encode(&cred.server_key), "D+CSWLOshSulAsxiupA+qs2/fTE=");
    let (server_first, step) = exchange(
        Mechanism::Sha1,
        &cred,
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    );
    assert_eq!(
        server_first,
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    );
    assert_eq!(
        step,
        Ok(Step::Done(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".to_vec()))
    );
}

fn mongo_sha1_cred() -> Credential {
    let input = pbkdf2_input(Mechanism::Sha1, "user", "pencil", true).unwrap();
    assert_eq!(&*input, "1c33006ec1ffd90f9cadcbcc0e118200");
    derive(
        Mechanism::Sha1,
        &input,
        &b64("rQ9ZY3MntBeuP3E1TDVC4w=="),
        10_000,
    )
}

#[test]
fn mongodb_spec_sha1_with_the_password_digest() {
    let cred = mongo_sha1_cred();
    assert_eq!(B64.encode(&cred.stored_key), "p5z6n7Utqf+pLBkaeJk4T3eBOOA=");
    assert_eq!(B64.encode(&cred.server_key), "lRrVHyqMX+OOqGvpcvv9anlA8IQ=");
    let (server_first, step) = exchange(
        Mechanism::Sha1,
        &cred,
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "Ho+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY=",
    );
    assert_eq!(
        server_first,
        "r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000"
    );
    assert_eq!(
        step,
        Ok(Step::Done(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=".to_vec()))
    );
}

#[test]
fn without_skip_empty_exchange_there_is_a_third_empty_round() {
    let cred = mongo_sha1_cred();
    let first = parse_client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
    let (mut conv, _) = Conversation::start(
        Mechanism::Sha1,
        "admin",
        first,
        &cred,
        "Ho+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE",
        false,
    )
    .unwrap();
    let step = conv
        .step(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY=")
        .unwrap();
    assert_eq!(
        step,
        Step::Continue(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=".to_vec())
    );
    assert_eq!(conv.step(b""), Ok(Step::Done(Vec::new())));
}

const SHA256_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

fn rfc7677_cred() -> Credential {
    let input = pbkdf2_input(Mechanism::Sha256, "user", "pencil", true).unwrap();
    derive(
        Mechanism::Sha256,
        &input,
        &b64("W22ZaJ0SNY7soEsUEjb6gQ=="),
        4096,
    )
}

#[test]
fn rfc7677_sha256() {
    let cred = rfc7677_cred();
    assert_eq!(
        B64.encode(&cred.stored_key),
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    );
    assert_eq!(
        B64.encode(&cred.server_key),
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    );
    let (server_first, step) = exchange(
        Mechanism::Sha256,
        &cred,
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        SHA256_FINAL,
    );
    assert_eq!(
        server_first,
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    assert_eq!(
        step,
        Ok(Step::Done(
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        ))
    );
}

#[test]
fn a_flipped_proof_or_a_foreign_nonce_fails() {
    let cred = rfc7677_cred();
    let flipped = SHA256_FINAL.replace("p=dHz", "p=eHz");
    let (_, step) = exchange(
        Mechanism::Sha256,
        &cred,
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        &flipped,
    );
    assert_eq!(step, Err(Failed("stored key mismatch")));
    let no_suffix = SHA256_FINAL.replace("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "");
    let (_, step) = exchange(
        Mechanism::Sha256,
        &cred,
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        &no_suffix,
    );
    assert_eq!(step, Err(Failed("nonce mismatch")));
}

#[test]
fn malformed_client_first_messages_are_refused() {
    for bad in [
        &b"p=tls-unique,,n=user,r=abcdef"[..],
        b"n,,m=ext,n=user,r=abcdef",
        b"n,,r=abcdef,n=user",
        b"n,,n=user,r=ab",
        b"n,,n=us=ZZer,r=abcdef",
        b"n,a=other,n=user,r=abcdef",
        b"\xff\xfe",
        b"",
    ] {
        assert!(parse_client_first(bad).is_err(), "{bad:?}");
    }
    let ok = parse_client_first(b"n,a=u=2Cv,n=u=2Cv,r=abcdef").unwrap();
    assert_eq!(ok.user, "u,v");
}

#[test]
fn fixed_salt_regression_vectors() {
    let sha1_salt: Vec<u8> = (0u8..16).collect();
    let sha256_salt: Vec<u8> = (0u8..28).collect();
    for (pwd, digest, s1, k1, s256, k256) in [
        (
            "example",
            "ee99d9348e5485b79aa65894269f2c0c",
            "YSdOUatCblFEQgEkPRu3EdYqjCE=",
            "gcKsEoJDLWOolSt1w0z33vKJxc4=",
            "MM0mQaZi0fIILbW6F88vWXY2+Y+DLudzi6XzlIDhf/0=",
            "xhs1As3pDqO1uggxgTZL9Ta4NdC1bK+XYldAwr8E4TQ=",
        ),
        (
            "changed-Pa55",
            "29adc20903c5ff187447a66d9b552f08",
            "62hfEnL5+1dArlgmqUEg0VX0OE0=",
            "4lzY12ub4sGCxvBxwqtQhMLUnV4=",
            "p9fk44O+JPCXcSfOMxFwKuSRETCSmBY+DWRspZ/eHYI=",
            "lHg/WZLkJCW6ifl5OicCQFYRe+oCymP9OCy8A+LK4pY=",
        ),
    ] {
        assert_eq!(mongo_digest("root", pwd), digest);
        let input = pbkdf2_input(Mechanism::Sha1, "root", pwd, true).unwrap();
        let c = derive(
            Mechanism::Sha1,
            &input,
            &sha1_salt,
            Mechanism::Sha1.default_iterations(),
        );
        assert_eq!(B64.encode(&c.stored_key), s1);
        assert_eq!(B64.encode(&c.server_key), k1);
        let input = pbkdf2_input(Mechanism::Sha256, "root", pwd, true).unwrap();
        let c = derive(
            Mechanism::Sha256,
            &input,
            &sha256_salt,
            Mechanism::Sha256.default_iterations(),
        );
        assert_eq!(B64.encode(&c.stored_key), s256);
        assert_eq!(B64.encode(&c.server_key), k256);
    }
}

#[test]
fn saslprep_vectors() {
    for (input, out) in [
        ("I\u{00AD}X", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u{00AA}", "a"),
        ("\u{2168}", "IX"),
        ("\u{2163}", "IV"),
        ("I\u{00AD}V", "IV"),
        ("a\u{00A0}b", "a b"),
    ] {
        assert_eq!(saslprep(input).as_deref(), Ok(out), "{input:?}");
    }
    assert_eq!(saslprep("\u{0007}"), Err(PasswordError::SaslPrep));
    assert_eq!(saslprep("\u{0627}1"), Err(PasswordError::SaslPrep));
}

#[test]
fn sha256_credentials_are_built_from_the_saslprepped_password() {
    let salt = b64("W22ZaJ0SNY7soEsUEjb6gQ==");
    for pwd in ["\u{2163}", "IV", "I\u{00AD}V"] {
        let input = pbkdf2_input(Mechanism::Sha256, "\u{2168}", pwd, true).unwrap();
        let c = derive(Mechanism::Sha256, &input, &salt, 4096);
        assert_eq!(
            B64.encode(&c.stored_key),
            "Y5n58HRh3G6ZzbsNYE+xvkRV1NSM6j4SQwlCEW4Amvc="
        );
        assert_eq!(
            B64.encode(&c.server_key),
            "vPEyY3qWOhCxlHaz82wFbc9iZ/vS/WQKgFM7JoqaFMA="
        );
    }
    assert_eq!(
        pbkdf2_input(Mechanism::Sha256, "u", "x", false).unwrap_err(),
        PasswordError::DigestedSha256
    );
}
