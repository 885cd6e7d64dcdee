//! husk-image: OCI images to runnable bundles.
//!
//!   husk-image unpack [--flat] [--platform OS/ARCH] [--entrypoint CMD] SOURCE BUNDLE [ARGS…]
//!
//! SOURCE is `oci:DIR[:REF]` or `oci-archive:FILE[:REF]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use husk::image::{self, Source, UnpackArgs};

#[derive(Parser)]
#[command(name = "husk-image", version, about = "OCI images to bundles for husk")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make BUNDLE (rootfs and config.json) from an image.
    Unpack {
        /// Apply every layer into BUNDLE/rootfs (a bundle any runtime can run).
        #[arg(long)]
        flat: bool,
        /// The platform to pick from an index (default: this host's).
        #[arg(long)]
        platform: Option<String>,
        /// Replace the image's Entrypoint (and drop its Cmd).
        #[arg(long)]
        entrypoint: Option<String>,
        source: String,
        bundle: PathBuf,
        /// Replace the image's Cmd.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Unpack {
            flat,
            platform,
            entrypoint,
            source,
            bundle,
            args,
        } => (|| {
            if !flat {
                return Err(image::ImageError::Source(
                    "only --flat bundles are made so far (the shared-layer overlay mode is not built yet)".into(),
                ));
            }
            let source = Source::parse(&source)?;
            let host = image::host_platform();
            let platform = match &platform {
                Some(p) => p.split_once('/').ok_or_else(|| {
                    image::ImageError::Source(format!("--platform {p:?}: expected OS/ARCH"))
                })?,
                None => host,
            };
            image::unpack_flat(&UnpackArgs {
                source: &source,
                bundle: &bundle,
                platform,
                entrypoint: entrypoint.map(|e| vec![e]),
                args,
            })
        })(),
    };
    if let Err(e) = r {
        eprintln!("husk-image: {e}");
        std::process::exit(1);
    }
}
