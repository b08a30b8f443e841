//! Image mode (issue 20 item 3): where real Komodo images are loaded in the local engine,
//! `KOMODO_ROTATE_TEST_CORE_IMAGE` and `KOMODO_ROTATE_TEST_PERIPHERY_IMAGE` make the rehearsal
//! stack (and so every test made on it) run them instead of the stand-ins.
//!
//! A real image has none of the stand-ins' controls, so in image mode the compose file the stack
//! writes depends on none of them ([`apply`]): the service's `image:` is the variable's value;
//! core loses the `/control` mount (`fail-next-start`), the stand-in's env and its healthcheck,
//! and gets one a real core supports (`GET /version` on 9120, core's one unauthenticated
//! endpoint, asked with the image's `bash`: research/komodo-v2-secrets.md §5); periphery loses
//! the stand-in's healthcheck (the official file and image have none; the tool's health gate
//! then waits for running and stable). Nothing is pulled: an image missing from the engine is
//! an error naming the variable. Without the variables nothing here changes a byte.
//!
//! A test that needs a stand-in-only control says so by name ([`require_standin`]) and is left
//! out of `cargo nextest run --profile real-images` (`.config/nextest.toml`); run in image mode
//! any other way it fails, naming the control, instead of passing without its check.

use komodo_rotate::docker::Engine;

pub const CORE_IMAGE_ENV: &str = "KOMODO_ROTATE_TEST_CORE_IMAGE";
pub const PERIPHERY_IMAGE_ENV: &str = "KOMODO_ROTATE_TEST_PERIPHERY_IMAGE";

/// The images that replace the stand-ins; `None` keeps the stand-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealImages {
    pub core: Option<String>,
    pub periphery: Option<String>,
}

impl RealImages {
    /// From the two variables (unset or empty: the stand-in). A value that is not an image
    /// reference is an error naming the variable.
    pub fn from_env() -> Result<RealImages, String> {
        let read = |var: &str| match std::env::var(var) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => image_ref(var, &v).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{var}: not UTF-8")),
        };
        Ok(RealImages {
            core: read(CORE_IMAGE_ENV)?,
            periphery: read(PERIPHERY_IMAGE_ENV)?,
        })
    }

    /// No real image: the stand-ins, exactly as without image mode.
    pub fn is_none(&self) -> bool {
        self.core.is_none() && self.periphery.is_none()
    }

    /// Each real image must be in the local engine already (`docker load`): compose would
    /// otherwise try a registry.
    pub async fn check_present(&self, engine: &Engine) -> Result<(), String> {
        for (var, image) in [
            (CORE_IMAGE_ENV, &self.core),
            (PERIPHERY_IMAGE_ENV, &self.periphery),
        ] {
            if let Some(image) = image {
                if engine.raw().inspect_image(image).await.is_err() {
                    return Err(format!(
                        "{var}={image}: no such image in the local Docker engine \
                         (load it first: docker load -i FILE; nothing is pulled)"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `value` if it reads as an image reference (`[registry/]name[:tag][@digest]`), which is also
/// safe to write into the compose file as a plain YAML scalar.
fn image_ref(var: &str, value: &str) -> Result<String, String> {
    let ok = value.len() <= 255
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{var}: {value:?} is not an image reference (letters, digits and . _ - / : @)"
        ))
    }
}

/// Core's healthcheck in image mode: `GET /version` on 9120 answered 200, asked with `bash`'s
/// `/dev/tcp` (Komodo's images are Debian slim: bash, no curl or wget). `$$` is compose's `$`.
const CORE_HEALTHCHECK: &str = "    healthcheck: # rehearsal: GET /version, core's one unauthenticated endpoint (image mode)
      test:
        - CMD
        - bash
        - -c
        - 'exec 3<>/dev/tcp/127.0.0.1/9120 && printf \"GET /version HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n\" >&3 && read -r s <&3 && case \"$$s\" in *\" 200 \"*) exit 0;; esac; exit 1'
      interval: 1s
      timeout: 3s
      retries: 3
";

/// The compose file `text` (any of the rehearsal's: v1, v2, ferretdb) with `images` in place of
/// the stand-ins and none of their controls. `text` unchanged when `images` has none.
pub fn apply(text: &str, images: &RealImages) -> Result<String, String> {
    if images.is_none() {
        return Ok(text.to_string());
    }
    let mut out = text.to_string();
    if let Some(core) = &images.core {
        out = edit_service(&out, "core", |lines| {
            set_image(lines, core, CORE_IMAGE_ENV)?;
            lines.retain(|l| {
                !l.contains("CORE_STANDIN_SELECTION_TIMEOUT_S") && !l.contains("./control:/control")
            });
            drop_empty_key(lines, "    volumes:");
            replace_healthcheck(lines, Some(CORE_HEALTHCHECK))
        })?;
    }
    if let Some(periphery) = &images.periphery {
        out = edit_service(&out, "periphery", |lines| {
            set_image(lines, periphery, PERIPHERY_IMAGE_ENV)?;
            replace_healthcheck(lines, None)
        })?;
    }
    let note = format!(
        "## rehearsal: image mode ({}): real images, none of the stand-ins' controls.\n",
        [
            images.core.as_ref().map(|i| format!("core {i}")),
            images.periphery.as_ref().map(|i| format!("periphery {i}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    );
    let at = out
        .find("\nservices:\n")
        .map(|i| i + 1)
        .ok_or("the compose file has no `services:`")?;
    out.insert_str(at, &format!("{note}\n"));
    Ok(out)
}

/// Runs `edit` on the lines of `service` (from `  <service>:` to the next line indented two
/// spaces or less).
fn edit_service(
    text: &str,
    service: &str,
    edit: impl FnOnce(&mut Vec<String>) -> Result<(), String>,
) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let head = format!("  {service}:\n");
    let start = lines
        .iter()
        .position(|l| *l == head)
        .ok_or_else(|| format!("the compose file has no service {service}"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let indent = l.len() - l.trim_start_matches(' ').len();
            !l.trim().is_empty() && indent <= 2
        })
        .map_or(lines.len(), |i| start + 1 + i);
    let mut body: Vec<String> = lines[start + 1..end]
        .iter()
        .map(|l| l.to_string())
        .collect();
    edit(&mut body).map_err(|e| format!("service {service}: {e}"))?;
    let mut out: String = lines[..=start].concat();
    out.extend(body);
    out.push_str(&lines[end..].concat());
    Ok(out)
}

fn set_image(lines: &mut [String], image: &str, var: &str) -> Result<(), String> {
    let line = lines
        .iter_mut()
        .find(|l| l.starts_with("    image: "))
        .ok_or("no `image:` line")?;
    *line = format!("    image: {image} # rehearsal: {var}\n");
    Ok(())
}

/// Removes `key` (a mapping key of the service) when no entry follows it any more (comments
/// between the key and its first entry do not count).
fn drop_empty_key(lines: &mut Vec<String>, key: &str) {
    if let Some(i) = lines.iter().position(|l| l.trim_end() == key) {
        let entry = lines[i + 1..]
            .iter()
            .find(|n| !n.trim_start().starts_with('#'))
            .is_some_and(|n| n.starts_with("      -"));
        if !entry {
            lines.remove(i);
        }
    }
}

/// Replaces the stand-in's `healthcheck:` block (the key and its deeper lines) with `with`, or
/// removes it.
fn replace_healthcheck(lines: &mut Vec<String>, with: Option<&str>) -> Result<(), String> {
    let i = lines
        .iter()
        .position(|l| l.starts_with("    healthcheck:"))
        .ok_or("no `healthcheck:` of the stand-in")?;
    let n = lines[i + 1..]
        .iter()
        .take_while(|l| l.starts_with("      "))
        .count();
    lines.drain(i..=i + n);
    if let Some(block) = with {
        let new: Vec<String> = block.split_inclusive('\n').map(String::from).collect();
        lines.splice(i..i, new);
    }
    Ok(())
}

/// A control only the stand-ins have; a test that needs one names it ([`require_standin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandinControl {
    /// Core's `/control/fail-next-start` (the stack dir's `control/`): its next start fails.
    /// (Also stands for the core stand-in's other routes, `GET /health`.)
    FailNextStart,
    /// Core's `GET /periphery` and `/periphery/polls` (does core reach periphery with its
    /// passkey), `CORE_STANDIN_POLL_MS`, periphery's v1 passkey guard and the two stand-ins'
    /// log lines about it.
    PasskeyProbe,
}

impl StandinControl {
    pub fn name(self) -> &'static str {
        match self {
            StandinControl::FailNextStart => "core's fail-next-start control",
            StandinControl::PasskeyProbe => "the passkey probe (core's GET /periphery)",
        }
    }

    /// Whether `images` leaves this control out.
    pub fn lacking(self, images: &RealImages) -> bool {
        match self {
            StandinControl::FailNextStart => images.core.is_some(),
            StandinControl::PasskeyProbe => !images.is_none(),
        }
    }
}

/// Panics, naming `test` and `control`, when image mode takes `control` away: such a test is
/// left out of the `real-images` nextest profile, and anywhere else it must fail rather than
/// pass without its check. Returns at once without the variables.
pub fn require_standin(test: &str, control: StandinControl) {
    let images = RealImages::from_env().unwrap_or_else(|e| panic!("{test}: {e}"));
    if control.lacking(&images) {
        panic!(
            "{test} needs {}, which a real image lacks ({CORE_IMAGE_ENV}={:?}, \
             {PERIPHERY_IMAGE_ENV}={:?}): image mode leaves it out \
             (cargo nextest run --profile real-images)",
            control.name(),
            images.core.as_deref().unwrap_or(""),
            images.periphery.as_deref().unwrap_or("")
        );
    }
}

#[cfg(test)]
#[path = "real_tests.rs"]
mod tests;
