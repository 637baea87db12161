//! json2x-repro FORMAT INPUT OUTPUT [--unwrap KEY]: writes INPUT (JSON) as TOML the way nixpkgs'
//! json2x does, for tests/nixos/run, which cannot build nixpkgs' own (no binary cache here).
//! json2x reads the derivation's structured-attrs file and writes the value under `--unwrap`;
//! the serialisation is `toml::to_string` of a `serde_json::Value`, keys in serde_json's order
//! (sorted: no preserve_order feature), nothing else.

use std::process::ExitCode;

fn run(args: &[String]) -> Result<(), String> {
    let (mut positional, mut unwrap) = (Vec::new(), None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--unwrap" {
            unwrap = Some(it.next().ok_or("--unwrap needs a key")?.clone());
        } else {
            positional.push(a.clone());
        }
    }
    let [format, input, output] = positional.as_slice() else {
        return Err("usage: json2x-repro toml INPUT OUTPUT [--unwrap KEY]".into());
    };
    if format != "toml" {
        return Err(format!("format {format:?} is not supported; only \"toml\""));
    }
    let text = std::fs::read_to_string(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("cannot parse {input}: {e}"))?;
    let value = match &unwrap {
        None => &json,
        Some(key) => json
            .as_object()
            .and_then(|o| o.get(key))
            .ok_or_else(|| format!("{input} has no attribute {key:?}"))?,
    };
    let toml = toml::to_string(value).map_err(|e| format!("cannot write TOML: {e}"))?;
    std::fs::write(output, toml).map_err(|e| format!("cannot write {output}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("json2x-repro: {e}");
            ExitCode::FAILURE
        }
    }
}
