//! The mesh's shared secret (NET_SECRET, NET_SECRET_FILE) and whether app-net's plain JSON
//! requests are served beside a secured mesh (NET_APPNET).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A mesh's shared secret: with it every connection of the peer is encrypted and
/// authenticated, and peers without it (or with another) get nothing. Never printed.
///
/// ```
/// let config = net::Config::default().secret(net::Secret::new("correct horse battery staple"));
/// assert!(config.secret.is_some());
/// assert_eq!(format!("{:?}", config.secret.unwrap()), "Secret(28 bytes)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret from its bytes (use at least 32 random ones: a recorded handshake lets
    /// someone guess a weak secret offline).
    pub fn new(secret: impl AsRef<[u8]>) -> Secret {
        Secret(secret.as_ref().into())
    }

    /// The secret in a file (NET_SECRET_FILE): its contents, less one trailing newline.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Secret> {
        let path = path.as_ref();
        let contents = std::fs::read(path).map_err(|e| Error::Config {
            var: "NET_SECRET_FILE",
            value: path.display().to_string(),
            reason: format!("cannot read the secret: {e}"),
        })?;
        let secret = strip_newline(&contents);
        if secret.is_empty() {
            return Err(Error::Config {
                var: "NET_SECRET_FILE",
                value: path.display().to_string(),
                reason: "the file is empty; put the mesh's secret in it".into(),
            });
        }
        Ok(Secret::new(secret))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The bytes as they are, less one trailing line ending (`\n` or `\r\n`) that editors and
/// `echo` add. Nothing else is trimmed, so a secret may hold any bytes.
fn strip_newline(contents: &[u8]) -> &[u8] {
    let contents = contents.strip_suffix(b"\n").unwrap_or(contents);
    contents.strip_suffix(b"\r").unwrap_or(contents)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// `NET_APPNET`: whether the peer serves Python app-net's JSON requests on its port. They
/// cannot be encrypted, so with a secret they would be a way around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AppNetAccess {
    /// `auto` (the default): served without a secret, refused with one.
    #[default]
    Auto,
    /// `allow`: served even with a secret. Anyone who reaches the port can then call this
    /// peer's functions and read its `info` in plain text, secret or not.
    Allow,
    /// `deny`: never served.
    Deny,
}

impl AppNetAccess {
    /// Whether app-net requests are served by a peer that has (`secured`) or has no secret.
    pub(crate) fn serves(self, secured: bool) -> bool {
        match self {
            AppNetAccess::Auto => !secured,
            AppNetAccess::Allow => true,
            AppNetAccess::Deny => false,
        }
    }

    pub(crate) fn parse(value: &str) -> Result<AppNetAccess> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(AppNetAccess::Auto),
            "allow" | "1" | "yes" | "on" | "true" => Ok(AppNetAccess::Allow),
            "deny" | "0" | "no" | "off" | "false" => Ok(AppNetAccess::Deny),
            _ => Err(Error::Config {
                var: "NET_APPNET",
                value: value.to_owned(),
                reason: "expected auto (the default), allow or deny".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_ending_is_stripped_from_a_file() {
        assert_eq!(strip_newline(b"s3cret\n"), b"s3cret");
        assert_eq!(strip_newline(b"s3cret\r\n"), b"s3cret");
        assert_eq!(strip_newline(b"s3cret\n\n"), b"s3cret\n");
        assert_eq!(strip_newline(b" s3cret "), b" s3cret ");
        assert_eq!(strip_newline(b"\n"), b"");
    }

    #[test]
    fn app_net_access_follows_the_secret_unless_told() {
        assert!(AppNetAccess::Auto.serves(false));
        assert!(!AppNetAccess::Auto.serves(true));
        assert!(AppNetAccess::Allow.serves(true));
        assert!(!AppNetAccess::Deny.serves(false));
        let err = AppNetAccess::parse("maybe").unwrap_err();
        assert!(err.to_string().contains("NET_APPNET=\"maybe\""), "{err}");
    }
}
