//! Splits the console's WASM module at the split points Leptos' `#[lazy_route]`
//! leaves in it, into a main module and one chunk per lazy page (plus chunks
//! for code pages share), with the names Leptos' `HydrationScripts` looks for:
//! the loader `__wasm_split.______________________.js` and the prefetch map
//! `__wasm_split_manifest.json` (route chunk -> the files to preload with it).
//!
//! `app/scripts/build.sh` runs it between `cargo build` (linked with
//! `--emit-relocs`) and `wasm-bindgen --keep-lld-exports`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// The loader's name in the site's pkg folder; Leptos asks for exactly this
/// when the server does not hash file names.
const LINK_NAME: &str = "./__wasm_split.______________________.js";
const MANIFEST: &str = "__wasm_split_manifest.json";

#[derive(Debug, Parser)]
#[command(name = "ritma-wasm-split", about)]
struct Args {
    /// The module `cargo build` linked (with `-Clink-args=--emit-relocs`).
    input: PathBuf,
    /// Where the main module, the chunks, the loader and the manifest go.
    out_dir: PathBuf,
    /// Name of the wasm-bindgen output (`<name>.js`, `<name>.wasm`).
    #[arg(long, default_value = "ritma_console")]
    out_name: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let input =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let main_out = args.out_dir.join(format!("{}.wasm", args.out_name));
    let main_module = format!("./{}.js", args.out_name);
    let split = wasm_split_cli_support::transform({
        let mut opts = wasm_split_cli_support::Options::new(&input);
        opts.output_dir = &args.out_dir;
        opts.main_out_path = &main_out;
        opts.main_module = &main_module;
        opts.link_name = LINK_NAME;
        opts.target.web();
        opts
    })
    .map_err(|e| anyhow::anyhow!("splitting {}: {e:#}", args.input.display()))?;
    let manifest = args.out_dir.join(MANIFEST);
    std::fs::write(&manifest, serde_json::to_vec_pretty(&split.prefetch_map)?)
        .with_context(|| format!("writing {}", manifest.display()))?;
    for chunk in &split.split_modules {
        println!("{}", chunk.display());
    }
    Ok(())
}
