//! `list`: every container under the root, as runc's table or JSON.

use std::io::Write;
use std::path::Path;

use super::{ContainerDir, StateOutput};

/// Output formats of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn list(root: &Path, format: Format, quiet: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if root.exists() {
        super::state::check_root(root).map_err(std::io::Error::other)?;
    }
    let mut ids: Vec<String> = match std::fs::read_dir(root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(e),
    };
    ids.sort();
    let mut found = Vec::new();
    for id in ids {
        let Ok(dir) = ContainerDir::new(root, &id) else {
            continue;
        };
        // A container being created or deleted right now has no state: skip it.
        let Ok(st) = dir.load_in_checked_root() else {
            continue;
        };
        found.push((dir, st));
    }
    if quiet {
        for (dir, _) in &found {
            writeln!(out, "{}", dir.id)?;
        }
        return Ok(());
    }
    let rows: Vec<StateOutput<'_>> = found.iter().map(|(d, s)| StateOutput::new(d, s)).collect();
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, &rows)?;
            writeln!(out)?;
        }
        Format::Table => {
            let table: Vec<[String; 6]> = rows
                .iter()
                .map(|r| {
                    [
                        r.id.to_string(),
                        r.pid.to_string(),
                        r.status.to_string(),
                        r.bundle.display().to_string(),
                        r.created.to_string(),
                        r.owner.clone(),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for row in std::iter::once(&head).chain(table.iter()) {
                for (w, c) in widths.iter_mut().zip(row) {
                    // As runc's tabwriter: cells padded by 3, columns at least 12 wide.
                    *w = (*w).max(c.len() + 3).max(12);
                }
            }
            for row in std::iter::once(&head).chain(table.iter()) {
                let mut line = String::new();
                for (i, c) in row.iter().enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(c);
                    } else {
                        line.push_str(&format!("{c:<w$}", w = widths[i]));
                    }
                }
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}
