//! The clients allowed to place orders, read from CLIENT_KEYS: one per
//! line, `<key> <name> <rate>` (`#` starts a comment), for example
//!
//! ```text
//! # key                                  name     rate[:burst]
//! k7Qm2vT9pX4rW8sZ1bN6cY3hJ5dF0gL       acme     50/s:100
//! ```
//!
//! `#` starts a comment anywhere, so a key holds none. The key is the
//! secret a client presents as `Authorization: Bearer`;
//! the name is what logs and metrics show, so a key is never written
//! anywhere. A file that breaks a rule stops the start, naming the line.

use std::collections::HashMap;
use std::path::Path;

use super::bucket::{Bucket, Rate};

/// Shorter keys could be guessed.
const MIN_KEY_LEN: usize = 16;

/// `order_admissions_total`'s labels for requests of no client.
const RESERVED: [&str; 2] = ["unknown", "per-address"];

pub struct Client {
    pub name: String,
    pub rate: Rate,
    pub bucket: Bucket,
}

/// Every client, by key.
pub struct ClientKeys {
    by_key: HashMap<String, Client>,
}

impl ClientKeys {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("CLIENT_KEYS {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("CLIENT_KEYS {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut by_key = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, client) =
                parse_line(line).map_err(|e| format!("line {}: {e}", number + 1))?;
            if !names.insert(client.name.clone()) {
                return Err(format!(
                    "line {}: a second client named {}",
                    number + 1,
                    client.name
                ));
            }
            if by_key.contains_key(&key) {
                return Err(format!("line {}: a key given twice", number + 1));
            }
            by_key.insert(key, client);
        }
        if by_key.is_empty() {
            return Err("no client in the file: nobody could place an order".into());
        }
        Ok(Self { by_key })
    }

    /// The client whose key `presented` is. The map hashes with SipHash
    /// under a seed random to this process and compares a key only with
    /// those of the same hash, which a guess cannot aim at: how long a
    /// lookup takes tells nothing about a real key.
    pub fn find(&self, presented: &str) -> Option<&Client> {
        self.by_key.get(presented)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_key.values().map(|c| c.name.as_str())
    }
}

/// A line's key and client.
fn parse_line(line: &str) -> Result<(String, Client), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [key, name, rate] = fields[..] else {
        return Err("expected `<key> <name> <rate>`".into());
    };
    if key.len() < MIN_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(format!(
            "a key is at least {MIN_KEY_LEN} printable characters, none of them '#'"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("{name:?} is a name the metrics use for no client"));
    }
    let name_ok = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(format!(
            "{name:?}: a name is at most 64 letters, digits, '-', '_' or '.'"
        ));
    }
    let client = Client {
        name: name.to_owned(),
        rate: rate.parse()?,
        bucket: Bucket::default(),
    };
    Ok((key.to_owned(), client))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# key                              name   rate
alpha-key-0123456789               alpha  10/s   # a comment
beta-key-01234567890               beta   600/min:5
";

    #[test]
    fn a_file_of_clients_is_read_and_keys_find_them() {
        let keys = ClientKeys::parse(FILE).unwrap();
        let alpha = keys.find("alpha-key-0123456789").unwrap();
        assert_eq!((alpha.name.as_str(), alpha.rate.quota), ("alpha", 10));
        assert_eq!(keys.find("beta-key-01234567890").unwrap().rate.quota, 5);
        assert!(keys.find("alpha-key-012345678").is_none());
        assert!(keys.find("").is_none());
        let mut names: Vec<_> = keys.names().collect();
        names.sort();
        assert_eq!(names, ["alpha", "beta"]);
    }

    #[test]
    fn each_broken_rule_is_refused_with_its_line() {
        let cases = [
            ("short-key alpha 10/s", "line 1: a key is at least 16"),
            ("alpha-key-0123456789 alpha", "line 1: expected"),
            ("alpha-key-0123456789 al/pha 10/s", "line 1: \"al/pha\""),
            ("alpha-key-0123456789 alpha 10/day", "line 1: \"10/day\""),
            (
                "alpha-key-0123456789 alpha 1/s\nbeta-key-01234567890 alpha 1/s",
                "line 2: a second client named alpha",
            ),
            (
                "alpha-key-0123456789 alpha 1/s\n\nalpha-key-0123456789 beta 1/s",
                "line 3: a key given twice",
            ),
            ("# nobody\n", "no client"),
            (
                "\u{feff}alpha-key-0123456789 unknown 1/s",
                "line 1: \"unknown\" is a name",
            ),
            (
                "alpha-key-0123456789 per-address 1/s",
                "line 1: \"per-address\"",
            ),
        ];
        for (text, expected) in cases {
            let error = ClientKeys::parse(text).err().unwrap();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }
}
