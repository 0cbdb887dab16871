//! GVariant golden tests against GLib (`/usr/bin/python3` with `python3-gi`), on random
//! values of every OSTree type, in both directions:
//! - GLib serialises random values; arbor must parse them as normal form and re-encode
//!   the identical bytes.
//! - arbor serialises its own random values; GLib must find them in normal form and
//!   re-serialise the identical bytes from their text form.

mod util {
    pub use arbor_tests::*;
}

use std::io::Write;
use std::process::{Command, Stdio};

use arbor_repo::gvariant::{Type, Value};

fn script() -> std::path::PathBuf {
    util::workspace_root().join("tests/golden/gv_glib.py")
}

#[test]
fn glib_random_values_reencode_identically() {
    let mut checked = 0;
    for seed in [1, 2, 3] {
        let r = util::run(
            util::system_python(),
            &[script().to_str().unwrap(), "gen", &seed.to_string(), "40"],
        );
        for line in r.ok().lines() {
            let (t, hex) = line.split_once('\t').expect("TYPE\\tHEX");
            let ty = Type::parse(t).unwrap_or_else(|e| panic!("{t}: {e}"));
            let data = decode_hex(hex);
            let v = Value::from_bytes(&ty, &data).unwrap_or_else(|e| panic!("{t} {hex:.200}: {e}"));
            assert_eq!(v.to_bytes(), data, "re-encoding differs for {t}");
            assert_eq!(v.type_of(), ty);
            checked += 1;
        }
    }
    assert!(checked > 3000, "only {checked} values checked");
}

const TYPES: &[&str] = &[
    "(a{sv}aya(say)sstayay)",
    "(a(say)a(sayay))",
    "(uuua(ayay))",
    "(uuuusa(ayay))",
    "(tuuuusa(ayay))",
    "a{sv}",
    "(a(s(taya{sv}))a{sv})",
    "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))",
    "(a(uuu)aa(ayay)a(ayay)ay)",
    "a(sssss)",
    "aa{sv}",
    "ms",
    "mu",
    "m(ss)",
    "()",
    "(yqut)",
    "a(uu)",
    "(sv)",
];
const VARIANT_TYPES: &[&str] = &[
    "s", "b", "t", "u", "y", "as", "ay", "aay", "a{sv}", "(yay)", "a(sssss)", "mu", "()",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn len(&mut self) -> usize {
        match self.below(10) {
            0 | 1 => 0,
            9 => 5 + self.below(40) as usize,
            _ => 1 + self.below(4) as usize,
        }
    }
    fn string(&mut self) -> String {
        let n = if self.below(100) == 0 {
            [250, 256, 300, 70_000][self.below(4) as usize]
        } else {
            self.below(12) as usize
        };
        let alphabet: Vec<char> = "abcXYZ_-./é☃ 0123456789".chars().collect();
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
            .collect()
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = match self.below(100) {
            0..=29 => 32,
            30 => [255, 256, 65_540][self.below(3) as usize],
            _ => self.below(10) as usize,
        };
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn random_value(ty: &Type, r: &mut Rng, depth: usize) -> Value {
    match ty {
        Type::Bool => Value::Bool(r.below(2) == 1),
        Type::Byte => Value::Byte(r.next() as u8),
        Type::Int16 => Value::Int16(r.next() as i16),
        Type::Uint16 => Value::Uint16(r.next() as u16),
        Type::Int32 => Value::Int32(r.next() as i32),
        Type::Uint32 => Value::Uint32(r.next() as u32),
        Type::Int64 => Value::Int64(r.next() as i64),
        Type::Uint64 => Value::Uint64(r.next()),
        Type::Handle => Value::Handle(r.next() as i32),
        Type::Double => Value::Double((r.below(2_000_000) as f64) / 7.0),
        Type::String => Value::String(r.string()),
        Type::ObjectPath => Value::ObjectPath("/org/example".into()),
        Type::Signature => Value::Signature("a{sv}".into()),
        Type::Variant => {
            let pick = if depth < 3 {
                VARIANT_TYPES[r.below(VARIANT_TYPES.len() as u64) as usize]
            } else {
                "s"
            };
            Value::Variant(Box::new(random_value(
                &Type::parse(pick).unwrap(),
                r,
                depth + 1,
            )))
        }
        Type::Array(elem) if **elem == Type::Byte => Value::Bytes(r.bytes()),
        Type::Array(elem) => {
            let n = r.len();
            if let Type::DictEntry(k, _) = elem.as_ref() {
                // GLib's text parser rejects nothing here, but keys should be unique
                // to keep the dictionary meaningful.
                let mut seen = std::collections::HashSet::new();
                let items = (0..n)
                    .map(|_| random_value(elem, r, depth + 1))
                    .filter(|v| match v {
                        Value::DictEntry(key, _) => seen.insert(format!("{key:?}")),
                        _ => true,
                    })
                    .collect();
                let _ = k;
                return Value::Array((**elem).clone(), items);
            }
            Value::Array(
                (**elem).clone(),
                (0..n).map(|_| random_value(elem, r, depth + 1)).collect(),
            )
        }
        Type::Maybe(elem) => {
            let v = (r.below(3) != 0).then(|| Box::new(random_value(elem, r, depth + 1)));
            Value::Maybe((**elem).clone(), v)
        }
        Type::Tuple(ms) => Value::Tuple(ms.iter().map(|m| random_value(m, r, depth + 1)).collect()),
        Type::DictEntry(k, v) => Value::DictEntry(
            Box::new(random_value(k, r, depth + 1)),
            Box::new(random_value(v, r, depth + 1)),
        ),
    }
}

#[test]
fn arbor_random_values_are_glib_normal_form() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut input = String::new();
    let mut count = 0;
    for t in TYPES {
        let ty = Type::parse(t).unwrap();
        for _ in 0..100 {
            let v = random_value(&ty, &mut r, 0);
            let bytes = v.to_bytes();
            // Our own decoder must accept what we write.
            assert_eq!(
                Value::from_bytes(&ty, &bytes).expect("own output parses"),
                v
            );
            input.push_str(&format!("{t}\t{}\n", encode_hex(&bytes)));
            count += 1;
        }
    }
    let mut child = Command::new(util::system_python())
        .arg(script())
        .arg("check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run GLib checker");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "GLib rejected arbor's bytes:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("checked {count}"));
}

#[test]
fn malformed_input_never_panics() {
    // Mutations of valid values: every result is Ok or Err, never a panic.
    let mut r = Rng(42);
    for t in TYPES {
        let ty = Type::parse(t).unwrap();
        for _ in 0..200 {
            let mut bytes = random_value(&ty, &mut r, 0).to_bytes();
            match r.below(3) {
                0 if !bytes.is_empty() => {
                    let i = r.below(bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << r.below(8);
                }
                1 => bytes.truncate(r.below(bytes.len() as u64 + 1) as usize),
                _ => bytes.push(r.next() as u8),
            }
            let _ = Value::from_bytes(&ty, &bytes);
        }
    }
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
