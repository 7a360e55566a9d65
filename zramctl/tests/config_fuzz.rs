//! The daemon's config parser under fuzzing (issue 9): arbitrary strings,
//! TOML-ish token soup and structured mutations of the shipped config
//! (`packaging/zramctl.toml`) never panic, and every error names the file
//! and a line and field (or, for a file-wide problem, says what is missing).

use std::path::Path;

use proptest::prelude::*;
use zramctl::daemon::config::{Config, ConfigError};

const PATH: &str = "/etc/zramctl/zramctl.toml";

fn shipped() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/zramctl.toml");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A valid config with every section, two devices, and overrides.
fn base() -> String {
    let mut s = shipped();
    s.push_str(
        "\n[[device]]\nname = \"/dev/zram1\"\nbudget_per_day = \"64M\"\nbatch_max = 64\nidle_age_initial_secs = 600\n",
    );
    s
}

/// Parses, catching panics; the error's checks done here.
fn check(src: &str) -> Result<Config, String> {
    let r = std::panic::catch_unwind(|| Config::parse(Path::new(PATH), src));
    let r = match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("Config::parse panicked ({msg}) on:\n{src:?}");
        }
    };
    match r {
        Ok(c) => {
            assert!(
                c.interval_secs.is_finite() && c.interval_secs > 0.0,
                "accepted interval {} from:\n{src}",
                c.interval_secs
            );
            assert!(!c.devices.is_empty());
            for d in &c.devices {
                assert!(!d.name.is_empty(), "empty device name accepted:\n{src}");
                let b = &d.policy.batch;
                // batch_initial outside the bounds is clamped at run time.
                assert!(b.min <= b.max, "batch bounds {b:?} accepted from:\n{src}");
            }
            Ok(c)
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with(PATH), "the error names the file: {text:?}");
            match &e {
                ConfigError::Invalid {
                    line,
                    field,
                    message,
                    ..
                } => {
                    let lines = src.lines().count().max(1);
                    assert!(
                        *line >= 1 && *line <= lines + 1,
                        "line {line} of a {lines}-line file: {text:?}"
                    );
                    assert!(!field.trim().is_empty(), "no field: {text:?}");
                    assert!(!message.trim().is_empty(), "no message: {text:?}");
                }
                ConfigError::Whole { message, .. } => {
                    assert!(
                        message.contains("device") || message.contains('`'),
                        "a file-wide error that names nothing: {text:?} for:\n{src:?}"
                    );
                }
                ConfigError::Read { .. } => unreachable!("parse reads nothing"),
            }
            Err(text)
        }
    }
}

#[test]
fn the_base_configs_are_valid() {
    check(&shipped()).expect("shipped config");
    let c = check(&base()).expect("base config");
    assert_eq!(c.devices.len(), 2);
}

/// Values a mutation may put in place of a valid one.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("0.0".to_string()),
        Just("-0.0".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("1e308".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("18446744073709551615".to_string()),
        Just("true".to_string()),
        Just("\"\"".to_string()),
        Just("\"16E\"".to_string()),
        Just("\"1Z\"".to_string()),
        Just("\"-5M\"".to_string()),
        Just("\"0x10\"".to_string()),
        Just("\"zram\\u0000\"".to_string()),
        Just("\"../../etc\"".to_string()),
        Just("\"::1:99999\"".to_string()),
        Just("\"0.0.0.0:9466\"".to_string()),
        Just("\"[::1]:0\"".to_string()),
        Just("[]".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{}".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("'''multi\nline'''".to_string()),
        Just("\"unterminated".to_string()),
        (0u64..u64::MAX).prop_map(|n| n.to_string()),
        (-1e12f64..1e12).prop_map(|f| format!("{f:?}")),
        "[a-zA-Z0-9 ._:/-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[0-9]{1,25}[kKmMgGtTpPeE]?".prop_map(|s| format!("\"{s}\"")),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    ReplaceValue(usize, String),
    RenameKey(usize, String),
    InsertLine(usize, String),
    SwapLines(usize, usize),
    Truncate(usize),
    CharFlip(usize, char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = 0usize..10_000;
    prop_oneof![
        idx.clone().prop_map(Mutation::DeleteLine),
        idx.clone().prop_map(Mutation::DuplicateLine),
        (idx.clone(), value()).prop_map(|(i, v)| Mutation::ReplaceValue(i, v)),
        (idx.clone(), "[a-z_]{1,20}").prop_map(|(i, k)| Mutation::RenameKey(i, k)),
        (
            idx.clone(),
            prop_oneof![
                Just("[policy]".to_string()),
                Just("[daemon]".to_string()),
                Just("[[device]]".to_string()),
                Just("[device]".to_string()),
                Just("[[policy]]".to_string()),
                Just("[device.backing]".to_string()),
                Just("name = \"zram0\"".to_string()),
                Just("name = \"zram1\"".to_string()),
                Just("x = 1".to_string()),
                Just("= 1".to_string()),
                Just("[".to_string()),
                Just("\"".to_string()),
                "\\PC{0,30}",
            ]
        )
            .prop_map(|(i, l)| Mutation::InsertLine(i, l)),
        (idx.clone(), idx.clone()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        idx.clone().prop_map(Mutation::Truncate),
        (idx, any::<char>()).prop_map(|(i, c)| Mutation::CharFlip(i, c)),
    ]
}

/// Applies a mutation; returns the new text and the (1-based) line it
/// changed, when it changed exactly one value.
fn apply(src: &str, m: &Mutation) -> (String, Option<usize>) {
    let mut lines: Vec<String> = src.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len().max(1);
    let mut changed = None;
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::ReplaceValue(i, v) => {
            // The i-th `key = value` line.
            let kv: Vec<usize> = (0..lines.len())
                .filter(|&k| lines[k].contains(" = ") && !lines[k].trim_start().starts_with('#'))
                .collect();
            let Some(&k) = kv.get(i % kv.len().max(1)) else {
                return (lines.join("\n"), None);
            };
            let key = lines[k].split(" = ").next().unwrap().to_owned();
            lines[k] = format!("{key} = {v}");
            if !v.contains('\n') {
                changed = Some(k + 1);
            }
        }
        Mutation::RenameKey(i, name) => {
            let kv: Vec<usize> = (0..lines.len())
                .filter(|&k| lines[k].contains(" = ") && !lines[k].trim_start().starts_with('#'))
                .collect();
            let Some(&k) = kv.get(i % kv.len().max(1)) else {
                return (lines.join("\n"), None);
            };
            let value = lines[k].split_once(" = ").unwrap().1.to_owned();
            lines[k] = format!("{name} = {value}");
        }
        Mutation::InsertLine(i, l) => lines.insert(i % (n + 1), l.clone()),
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::Truncate(i) => {
            let s = lines.join("\n");
            let mut cut = i % (s.len() + 1);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            return (s[..cut].to_owned(), None);
        }
        Mutation::CharFlip(i, c) => {
            let s = lines.join("\n");
            let mut at = i % (s.len().max(1));
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            let mut out = s[..at].to_owned();
            out.push(*c);
            let rest = &s[at..];
            out.push_str(rest.char_indices().nth(1).map_or("", |(j, _)| &rest[j..]));
            return (out, None);
        }
    }
    (lines.join("\n") + "\n", changed)
}

const KEYS: [&str; 40] = [
    "interval_secs",
    "metrics_listen",
    "probes",
    "psi_path",
    "budget_per_day",
    "budget_burst",
    "max_pages_per_round",
    "period_secs",
    "min_interval_secs",
    "psi_some_avg10",
    "utilisation",
    "backoff_initial_secs",
    "backoff_max_secs",
    "idle_age_initial_secs",
    "idle_age_floor_secs",
    "idle_age_ceiling_secs",
    "refault_window_secs",
    "refault_high",
    "refault_low",
    "batch_min",
    "batch_max",
    "batch_initial",
    "target_p99_ms",
    "batch_band",
    "name",
    "disksize",
    "algorithm",
    "recomp_algorithm",
    "backing",
    "recompress_idle_age_secs",
    "recompress_algorithm",
    "recompress_threshold",
    "recompress_interval_secs",
    "recompress_max_pages",
    "batch_cooldown_secs",
    "batch_increase",
    "batch_decrease",
    "device",
    "policy",
    "daemon",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any string at all.
    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,400}") {
        let _ = check(&src);
    }

    /// TOML-ish token soup: sections, keys, values, comments, quotes.
    #[test]
    fn toml_soup_never_panics(tokens in proptest::collection::vec(prop_oneof![
        Just("[daemon]\n".to_string()), Just("[policy]\n".to_string()),
        Just("[[device]]\n".to_string()), Just("[device.backing]\n".to_string()),
        Just("name = \"zram0\"\n".to_string()), Just("\n".to_string()),
        Just(" = ".to_string()), Just("\"".to_string()), Just("'".to_string()),
        Just("#".to_string()), Just("[".to_string()), Just("]".to_string()),
        Just("{".to_string()), Just("}".to_string()), Just(",".to_string()),
        Just(".".to_string()), Just("\\".to_string()), Just("\"\"\"".to_string()),
        proptest::sample::select(KEYS.to_vec()).prop_map(|k| k.to_string()),
        value(),
    ], 0..60)) {
        let _ = check(&tokens.concat());
    }

    /// One to four mutations of a valid config: no panic; an error names
    /// the file, a line in it and a field; when one value was replaced, the
    /// error points at that line or names a field of the file.
    #[test]
    fn mutated_configs_fail_clearly(ms in proptest::collection::vec(mutation(), 1..5)) {
        let mut src = base();
        let mut changed = None;
        for m in &ms {
            let (s, c) = apply(&src, m);
            src = s;
            changed = if ms.len() == 1 { c } else { None };
        }
        if let Err(text) = check(&src)
            && let Some(line) = changed
        {
            let at_line = text.contains(&format!("{PATH}:{line}:"));
            let names_field = KEYS.iter().any(|k| text.contains(&format!(".{k}:")) || text.contains(&format!(": {k}:")));
            prop_assert!(at_line || names_field, "one value changed on line {line}, error elsewhere: {text}\n{src}");
        }
    }
}
