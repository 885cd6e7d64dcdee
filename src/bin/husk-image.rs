//! husk-image: OCI images to runnable bundles.
//!
//!   husk-image unpack [--flat | --store DIR] [--platform OS/ARCH] [--entrypoint CMD] SOURCE BUNDLE [ARGS…]
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
        /// Where layers are kept, once each, shared by bundles (overlay mode).
        #[arg(long, default_value = "/var/lib/husk/layers")]
        store: PathBuf,
        /// The platform to pick from an index (default: this host's).
        #[arg(long)]
        platform: Option<String>,
        /// No progress output (shown only on a terminal anyway).
        #[arg(short, long)]
        quiet: bool,
        /// Replace the image's Entrypoint (and drop its Cmd).
        #[arg(long)]
        entrypoint: Option<String>,
        /// Join this network namespace (e.g. made by `husk-net add`) instead
        /// of a new, empty one.
        #[arg(long)]
        netns: Option<PathBuf>,
        /// Refuse a layer that expands to more than this (bytes, or with
        /// K, M, G, T; 0 for no bound). Zeros are stored as holes either way.
        // The default is above the largest layers real images have (CUDA,
        // model weights) and far below what a compression bomb reaches.
        #[arg(long, default_value = "32G", value_parser = max_layer_size)]
        max_layer_size: u64,
        source: String,
        bundle: PathBuf,
        /// Replace the image's Cmd.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The stored layers: diff id, size, and the bundles that use them.
    List {
        #[arg(long, default_value = "/var/lib/husk/layers")]
        store: PathBuf,
    },
    /// Remove the stored layers no bundle uses any more.
    Gc {
        #[arg(long, default_value = "/var/lib/husk/layers")]
        store: PathBuf,
    },
}

fn max_layer_size(s: &str) -> Result<u64, String> {
    image::parse_size(s).ok_or_else(|| {
        format!("{s:?}: expected bytes, or a number with K, M, G or T (0: no bound)")
    })
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Unpack {
            flat,
            store,
            quiet,
            platform,
            entrypoint,
            netns,
            max_layer_size,
            source,
            bundle,
            args,
        } => (|| {
            let source = Source::parse(&source)?;
            let host = image::host_platform();
            let platform = match &platform {
                Some(p) => p.split_once('/').ok_or_else(|| {
                    image::ImageError::Source(format!("--platform {p:?}: expected OS/ARCH"))
                })?,
                None => host,
            };
            let a = UnpackArgs {
                source: &source,
                bundle: &bundle,
                platform,
                entrypoint: entrypoint.map(|e| vec![e]),
                args,
                quiet,
                netns: netns.as_deref(),
                max_layer_size,
            };
            if flat {
                image::unpack_flat(&a)
            } else {
                image::unpack_overlay(&a, &store)
            }
        })(),
        Cmd::List { store } => image::store::list(&store).map(|layers| {
            println!("{:<19} {:>10}  BUNDLES", "DIFF ID", "SIZE");
            for l in layers {
                let users: Vec<String> =
                    l.bundles.iter().map(|b| b.display().to_string()).collect();
                println!(
                    "sha256:{:<12} {:>10}  {}",
                    &l.hex[..12],
                    l.bytes,
                    if users.is_empty() {
                        "-".to_string()
                    } else {
                        users.join(",")
                    }
                );
            }
        }),
        Cmd::Gc { store } => image::store::gc(&store).map(|removed| {
            for r in removed {
                println!("removed sha256:{r}");
            }
        }),
    };
    if let Err(e) = r {
        eprintln!("husk-image: {e}");
        std::process::exit(1);
    }
}
