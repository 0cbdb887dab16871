//! ostree's ed25519 signatures (`ostree.sign.ed25519`): RFC 8032 pure Ed25519, 64 bytes,
//! over the same bytes as OpenPGP ones. Deterministic, so equal to libostree's own.
//!
//! Key files as `ostree sign` reads them: one base64 key per line; a secret key is 64 bytes
//! (32-byte seed ‖ 32-byte public key, libsodium's layout), a public key 32 bytes. PEM from
//! `openssl genpkey -algorithm ed25519` (PKCS#8) and `openssl pkey -pubout` (SPKI) are read too.

use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::SignError;

const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// The DER inside a PEM block, if `text` is one.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let body: String = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect();
    b64(&body)
}

/// A secret key for signing.
#[derive(Debug)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    pub fn load(path: &Path) -> Result<SecretKey, SignError> {
        let data = crate::read_bounded(path, 64 * 1024)?;
        let text = String::from_utf8_lossy(&data);
        Self::parse(&text).map_err(|why| SignError::Key {
            what: path.display().to_string(),
            why,
        })
    }

    pub fn parse(text: &str) -> Result<SecretKey, String> {
        if let Some(der) = pem_der(text) {
            return match der.strip_prefix(&PKCS8_PREFIX[..]) {
                Some(seed) if seed.len() == 32 => Ok(SecretKey(SigningKey::from_bytes(
                    seed.try_into()
                        .map_err(|_| "a PKCS#8 key of the wrong length".to_string())?,
                ))),
                _ => Err("a PEM key that is not an Ed25519 PKCS#8 private key".into()),
            };
        }
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or("no key in it")?;
        let raw = b64(line).ok_or("not base64")?;
        match raw.len() {
            64 => {
                let seed: [u8; 32] = raw[..32].try_into().map_err(|_| "length")?;
                let key = SigningKey::from_bytes(&seed);
                if key.verifying_key().as_bytes()[..] != raw[32..] {
                    return Err(
                        "the public half of the 64-byte key does not match its seed".into(),
                    );
                }
                Ok(SecretKey(key))
            }
            32 => Err("32 bytes: that is a public key; the secret key is 64 bytes (seed ‖ public), as `ostree sign` reads it".into()),
            n => Err(format!("{n} bytes; an ostree ed25519 secret key is 64 bytes (base64)")),
        }
    }

    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    pub fn sign(&self, payload: &[u8]) -> [u8; 64] {
        self.0.sign(payload).to_bytes()
    }
}

/// Public keys for verification.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys(pub Vec<VerifyingKey>);

impl PublicKeys {
    /// A key given inline (base64) or a file of keys (one base64 per line, or PEM SPKI).
    pub fn load(spec: &str) -> Result<PublicKeys, SignError> {
        if let Some(raw) = b64(spec).filter(|r| r.len() == 32) {
            return Self::parse(&format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
            .map_err(|why| SignError::Key {
                what: spec.into(),
                why,
            });
        }
        let path = Path::new(spec);
        let data = crate::read_bounded(path, 1024 * 1024)?;
        Self::parse(&String::from_utf8_lossy(&data)).map_err(|why| SignError::Key {
            what: path.display().to_string(),
            why,
        })
    }

    pub fn parse(text: &str) -> Result<PublicKeys, String> {
        let mut keys = Vec::new();
        if let Some(der) = pem_der(text) {
            let raw = der
                .strip_prefix(&SPKI_PREFIX[..])
                .filter(|r| r.len() == 32)
                .ok_or("a PEM key that is not an Ed25519 public key")?;
            keys.push(to_public(raw)?);
        } else {
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let raw = b64(line).ok_or_else(|| format!("{line:?} is not base64"))?;
                if raw.len() != 32 {
                    return Err(format!(
                        "a key of {} bytes; an ed25519 public key is 32 bytes (base64)",
                        raw.len()
                    ));
                }
                keys.push(to_public(&raw)?);
            }
        }
        if keys.is_empty() {
            return Err("no ed25519 public key in it".into());
        }
        Ok(PublicKeys(keys))
    }

    /// The key (hex) that made `sig` over `payload`, checked strictly (anything this accepts,
    /// libostree accepts).
    pub fn verify(&self, payload: &[u8], sig: &[u8]) -> Option<String> {
        let sig = Signature::from_slice(sig).ok()?;
        self.0
            .iter()
            .find(|k| k.verify_strict(payload, &sig).is_ok())
            .map(hex)
    }
}

fn to_public(raw: &[u8]) -> Result<VerifyingKey, String> {
    let arr: [u8; 32] = raw.try_into().map_err(|_| "length")?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("not an ed25519 public key: {e}"))
}

/// A public key as ostree prints it (hex).
pub fn hex(k: &VerifyingKey) -> String {
    k.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 test 2 (one-byte message 0x72): the signature is fixed by the key.
    #[test]
    fn rfc8032_vector() {
        let seed = hex_bytes("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        let public = hex_bytes("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let mut both = seed.clone();
        both.extend_from_slice(&public);
        let k = SecretKey::parse(&base64::engine::general_purpose::STANDARD.encode(&both)).unwrap();
        let sig = k.sign(&[0x72]);
        assert_eq!(
            sig.to_vec(),
            hex_bytes("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
        );
        let pubs =
            PublicKeys::parse(&base64::engine::general_purpose::STANDARD.encode(&public)).unwrap();
        assert_eq!(
            pubs.verify(&[0x72], &sig).as_deref(),
            Some(&hex(&k.public())[..])
        );
        assert_eq!(pubs.verify(&[0x73], &sig), None);
    }

    #[test]
    fn wrong_sizes_are_named() {
        let e = SecretKey::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 32]))
            .unwrap_err();
        assert!(e.contains("public key"), "{e}");
        let e = PublicKeys::parse("AAAA").unwrap_err();
        assert!(e.contains("3 bytes"), "{e}");
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
