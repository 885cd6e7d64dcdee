//! Shared by the property tests over hostile input: random edits of a JSON
//! document (values of every type, the format's own key names, the strings
//! attacks are made of, at random places), and the run configuration.
//!
//! Runs are deterministic: a fixed seed, so the suite cannot turn red at
//! random, and failures found are kept beside the test as `tests/NAME.regressions`
//! (commit them: they are replayed first on every run). A longer exploring run is
//! asked for on purpose:
//!
//! ```text
//! HUSK_FUZZ_RANDOM=1 HUSK_FUZZ_CASES=100000 cargo test --release --test config_fuzz
//! ```
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};
use serde_json::{Value, json};

/// The seed CI runs with.
const SEED: u64 = 0x6875_736b_2d66_7a31;

/// `cases` cases from the fixed seed, unless HUSK_FUZZ_RANDOM / HUSK_FUZZ_CASES ask otherwise.
pub fn config(cases: u32) -> ProptestConfig {
    let random = std::env::var_os("HUSK_FUZZ_RANDOM").is_some();
    let cases = std::env::var("HUSK_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        rng_seed: if random {
            RngSeed::Random
        } else {
            RngSeed::Fixed(SEED)
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

pub fn leaf(strings: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(4096),
            Just(u32::MAX as i64 + 1)
        ]
        .prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        proptest::sample::select(strings).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ]
}

pub fn value(
    keys: &'static [&'static str],
    strings: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    leaf(strings).prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(keys), inner), 0..4).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

/// One edit: which node (by its index in a walk of the tree), what to do there.
#[derive(Debug, Clone)]
pub enum Edit {
    Replace(usize, Value),
    Insert(usize, &'static str, Value),
    Remove(usize),
}

pub fn edit(
    keys: &'static [&'static str],
    strings: &'static [&'static str],
) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), value(keys, strings)).prop_map(|(i, v)| Edit::Replace(i, v)),
        (
            any::<usize>(),
            proptest::sample::select(keys),
            value(keys, strings)
        )
            .prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`th node in a pre-order walk.
fn nth(v: &mut Value, n: usize) -> &mut Value {
    fn go<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().find_map(|c| go(c, n)),
            Value::Object(o) => o.values_mut().find_map(|c| go(c, n)),
            _ => None,
        }
    }
    let mut k = n;
    go(v, &mut k).expect("n is below the node count")
}

pub fn apply(config: &mut Value, e: &Edit) {
    let n = count(config);
    match e {
        Edit::Replace(i, v) => *nth(config, i % n) = v.clone(),
        Edit::Insert(i, k, v) => {
            if let Value::Object(o) = nth(config, i % n) {
                o.insert(k.to_string(), v.clone());
            }
        }
        Edit::Remove(i) => match nth(config, i % n) {
            Value::Object(o) if !o.is_empty() => {
                let k = o.keys().nth(i % o.len()).unwrap().clone();
                o.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let len = a.len();
                a.remove(i % len);
            }
            _ => {}
        },
    }
}
