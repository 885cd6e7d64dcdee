//! husk-conformance: an OCI runtime conformance suite. It drives any runtime
//! through its CLI (`--runtime PATH`, default `$RUNTIME`) and checks each case's
//! effect from inside the container (the `oci-check` program) or from the host.
//! Prints TAP and a closing `N passed, M failed` line.
//!
//!   husk-conformance --runtime PATH --checker PATH [--work DIR] [--json OUT] [FILTER]
//!   husk-conformance --table NAME=RESULTS.json…   (the README's markdown table)

mod cases;
mod console;
mod harness;

use std::path::PathBuf;

use serde_json::{Value, json};

fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--table") {
        print_table(&args[i + 1..]);
        return;
    }
    let runtime = arg_value(&args, "--runtime")
        .or_else(|| std::env::var("RUNTIME").ok())
        .unwrap_or_else(|| "husk".to_string());
    let checker = arg_value(&args, "--checker").unwrap_or_else(|| "oci-check".to_string());
    let work = PathBuf::from(
        arg_value(&args, "--work")
            .unwrap_or_else(|| format!("/tmp/husk-conformance-{}", std::process::id())),
    );
    let json_out = arg_value(&args, "--json");
    // Cases this runtime is known not to pass yet, with why: reported as TAP
    // TODO, so they run and show but do not fail the suite; a listed case that
    // passes is reported so the list shrinks.
    let known: Vec<(String, String)> = arg_value(&args, "--known-failures")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (n, why) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (n.to_string(), why.trim().to_string())
        })
        .collect();
    // The one argument that is neither a flag nor a flag's value selects cases.
    let mut filter = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a.starts_with("--") {
            it.next();
        } else {
            filter = Some(a.clone());
        }
    }

    // Container inits are reparented here once the runtime's create exits.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let ctx = match harness::Ctx::new(
        PathBuf::from(&runtime),
        work.clone(),
        std::path::Path::new(&checker),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("husk-conformance: set-up failed: {e}");
            std::process::exit(2);
        }
    };
    let cases: Vec<_> = cases::all()
        .into_iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    println!("TAP version 13");
    println!("1..{}", cases.len());
    let (mut passed, mut failed, mut todo) = (0, 0, 0);
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let r = (case.run)(&ctx);
        harness::reap();
        let known_why = known
            .iter()
            .find(|(n, _)| n == case.name)
            .map(|(_, w)| w.as_str());
        match (&r, known_why) {
            (Ok(()), None) => {
                passed += 1;
                println!("ok {} - {} # {}", i + 1, case.name, case.section);
            }
            (Ok(()), Some(_)) => {
                passed += 1;
                println!(
                    "ok {} - {} # {} (listed as a known failure: take it off the list)",
                    i + 1,
                    case.name,
                    case.section
                );
            }
            (Err(why), Some(reason)) => {
                todo += 1;
                println!("not ok {} - {} # TODO {reason}", i + 1, case.name);
                println!("  # {}", why.replace('\n', "\n  # "));
            }
            (Err(why), None) => {
                failed += 1;
                println!("not ok {} - {} # {}", i + 1, case.name, case.section);
                println!("  # {}", why.replace('\n', "\n  # "));
            }
        }
        results.push(
            json!({"name": case.name, "section": case.section, "ok": r.is_ok(), "why": r.err()}),
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    if let Some(path) = json_out {
        let _ = std::fs::write(
            path,
            serde_json::to_vec_pretty(&results).unwrap_or_default(),
        );
    }
    if todo > 0 {
        println!("# {todo} known failures (TODO), listed with their reasons above");
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Prints the markdown table of several runs: one column per runtime.
fn print_table(specs: &[String]) {
    let mut runs: Vec<(String, Vec<Value>)> = Vec::new();
    for s in specs {
        let Some((name, path)) = s.split_once('=') else {
            continue;
        };
        let v: Vec<Value> = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        runs.push((name.to_string(), v));
    }
    let names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
    println!("| case | spec section | {} |", names.join(" | "));
    println!("|---|---|{}", "---|".repeat(names.len()));
    for case in cases::all() {
        let cells: Vec<String> = runs
            .iter()
            .map(
                |(_, res)| match res.iter().find(|r| r["name"] == case.name) {
                    Some(r) if r["ok"] == true => "pass".to_string(),
                    Some(r) => format!(
                        "FAIL: {}",
                        r["why"]
                            .as_str()
                            .unwrap_or("")
                            .replace('|', "/")
                            .chars()
                            .take(90)
                            .collect::<String>()
                    ),
                    None => "-".to_string(),
                },
            )
            .collect();
        println!(
            "| {} | {} | {} |",
            case.name,
            case.section,
            cells.join(" | ")
        );
    }
}
