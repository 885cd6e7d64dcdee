//! Logging as runc does it: `--log FILE` with `--log-format json` writes one
//! `{"level":…,"msg":…,"time":…}` object a line, which containerd's shim reads
//! to report why a call failed; text lines otherwise. Errors also go to stderr.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<&Path>, format: Format, debug: bool) -> Logger {
        // Not through a link planted at the name (the log's directory may be
        // writable by others).
        let file = path.and_then(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)
                .ok()
        });
        Logger {
            file,
            format,
            debug,
        }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        match self.format {
            Format::Json => {
                let v = serde_json::json!({"level": level, "msg": msg, "time": time});
                format!("{v}\n")
            }
            Format::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
        }
    }

    fn write(&self, level: &str, msg: &str) {
        if let Some(mut f) = self.file.as_ref() {
            let _ = f.write_all(self.line(level, msg).as_bytes());
        }
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
        eprintln!("husk: {msg}");
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
        if self.file.is_none() {
            eprintln!("husk: warning: {msg}");
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
            if self.file.is_none() {
                eprintln!("husk: debug: {msg}");
            }
        }
    }
}
