//! The darlings command line: a thin layer over the library that turns arguments into calls
//! and errors into a printed chain and a non-zero exit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use darlings::config;
use darlings::owners::Accounts;
use darlings::report::{lost_state, Classifier};
use darlings::{apply, backends, logging, plan};
use darlings_backends::{DiffLimits, RollbackOpts};

#[derive(Parser)]
#[command(
    name = "darlings",
    version,
    about = "Erase your darlings: roll the root back to blank and keep only what you chose"
)]
struct Cli {
    /// More output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// The config file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Where btrfs mounts its top-level subvolume (in a fresh private directory) while it works.
    #[arg(long, global = true, default_value = "/run/darlings")]
    work_dir: PathBuf,
    /// Where log lines go.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    log: logging::Target,
    /// journald's native socket, where `report.journald` sends the boot outcome and the
    /// lost-state summary (nothing is sent when it does not exist).
    #[arg(long, global = true, default_value = darlings::journal::SOCKET)]
    journal_socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate the config and the live system it describes; changes nothing.
    Check {
        /// The root the config is checked against.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Validate the config file alone, not the system it describes (for configs built
        /// elsewhere, such as the NixOS module's /etc/darlings.toml).
        #[arg(long)]
        config_only: bool,
    },
    /// Print the bind-mount plan (steps in order).
    Plan {
        /// The root whose etc/passwd and etc/group resolve owner names.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Bind the persisted paths from their stores into ROOT.
    Apply {
        #[arg(long)]
        root: PathBuf,
        /// Check everything and print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// libmount's utab, where hide-mounts records x-gvfs-hide.
        #[arg(long, default_value = "/run/mount/utab")]
        utab: PathBuf,
    },
    /// Move existing state from the live root into a store so that the next boot keeps it:
    /// copy (verified) when the store lacks it, bind when the store's copy is identical, refuse
    /// when it differs.
    Adopt {
        /// The paths to adopt, absolute as in the config.
        #[arg(required_unless_present = "all_suggested")]
        paths: Vec<String>,
        /// The live root whose state is adopted, with its stores mounted beneath it.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// The store for paths the config has no entry for (one of its [[persist]] stores).
        #[arg(long)]
        store: Option<String>,
        /// Check everything and print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Add the entries for --store's paths to the config file (TOML), or print the Nix to
        /// add when the config is the NixOS module's.
        #[arg(long)]
        write_config: bool,
        /// Adopt every path `darlings diff --suggest` suggests.
        #[arg(long)]
        all_suggested: bool,
        /// libmount's utab, where hide-mounts records x-gvfs-hide.
        #[arg(long, default_value = "/run/mount/utab")]
        utab: PathBuf,
    },
    /// What the root holds that the blank does not: lost, persisted or ignored.
    Diff {
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
        /// Stop after this many entries (reported as truncated).
        #[arg(long)]
        max_entries: Option<usize>,
        /// Lines of lost groups in the text output.
        #[arg(long, default_value_t = 40)]
        lines: usize,
        /// Skip sizes: no stat per file, as fast as `find -xdev` (tmpfs).
        #[arg(long)]
        no_sizes: bool,
        /// Also save the report into diff.report-dir beneath --root, as a boot does (for a tmpfs
        /// root, whose state is gone after power-off: run it at shutdown).
        #[arg(long)]
        save: bool,
        /// Propose config entries that would keep what is lost (TOML; --json, --nix).
        #[arg(long)]
        suggest: bool,
        /// With --suggest: the NixOS module's Nix instead of TOML.
        #[arg(long, requires = "suggest", conflicts_with = "json")]
        nix: bool,
        /// With --suggest: the store the entries go to (default: the config's first store).
        #[arg(long, requires = "suggest")]
        store: Option<String>,
    },
    /// What an initrd runs: preflight, lost-state diff, rollback (early); fresh tmpfs, saved
    /// report, bind mounts (late). Exits 1 only when on-failure = "halt" and a phase failed.
    Boot {
        #[arg(long, value_enum, default_value = "all")]
        stage: darlings::boot::Stage,
        /// Where the new root is (or, stage all, gets) mounted, with its stores beneath it.
        #[arg(long, default_value = "/sysroot")]
        root: PathBuf,
        /// The kernel command line to read darlings.* parameters from.
        #[arg(long, default_value = "/proc/cmdline")]
        cmdline: PathBuf,
        /// Run every check and print what would be done; change nothing, write no record.
        #[arg(long)]
        dry_run: bool,
        /// libmount's utab, where hide-mounts records x-gvfs-hide (the initrd's /run moves
        /// into the booted system).
        #[arg(long, default_value = "/run/mount/utab")]
        utab: PathBuf,
    },
    /// What darlings did in this boot's initrd (from the work dir's boot record).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show the latest (or a named) lost-state report saved in the store.
    Report {
        /// A report's name, e.g. 20261122T044127Z (default: the latest).
        name: Option<String>,
        #[arg(long)]
        json: bool,
        /// The root the store is mounted beneath.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Make the root blank through the configured backend.
    Rollback {
        #[arg(long, default_value = "/sysroot")]
        root: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// For a new install: create the blank from the empty root (btrfs: a read-only snapshot).
    Init {
        #[arg(long)]
        dry_run: bool,
    },
    /// What the stores hold that no entry covers any more (entries removed from the config).
    Orphans {
        /// The root the stores are mounted beneath (its etc/passwd resolves homes).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
        /// Remove orphans: the ones named (each must be listed), or with none named, ask for each
        /// one on the terminal.
        #[arg(long, num_args = 0.., value_name = "PATH")]
        remove: Option<Vec<String>>,
        /// Print what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the old roots a rollback kept, with sizes and the report of the boot that retired each.
    OldRoots {
        /// Where the stores are mounted (for the saved reports).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
        /// Btrfs without quotas: walk each old root to sum its sizes (slow on a big root).
        #[arg(long)]
        sizes: bool,
    },
    /// Copy paths back from a kept old root (see old-roots) into the root or their store.
    Restore {
        /// The old root's name, as old-roots lists it.
        old: String,
        /// Absolute paths as they were in that root.
        #[arg(required = true)]
        paths: Vec<String>,
        #[arg(long, value_enum, default_value = "root")]
        into: darlings::restore::Into,
        /// The running root (and, beneath it, the stores).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Check everything and print what would be copied; copy nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask the next boot, once, to skip its rollback (the kernel command line still wins).
    Hold {
        /// Remove the hold instead.
        #[arg(long)]
        cancel: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// List the presets: what each service keeps, at which level, and why.
    Presets {
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// The table README.md shows (generated from the same data).
        #[arg(long)]
        markdown: bool,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

/// The configured backend for ROOT (`sizes`: whether its diff stats files).
fn backend_at(
    config: &config::Config,
    root: &Path,
    work_dir: &Path,
    sizes: bool,
) -> Result<Box<dyn darlings_backends::Backend>> {
    Ok(backends::backend(
        config,
        &backends::Ctx {
            root,
            sizes,
            work_dir,
        },
    )?)
}

/// The lost-state report of ROOT, as `darlings diff` and a boot's early stage make it.
fn lost_report(
    config: &config::Config,
    root: &Path,
    work_dir: &Path,
    sizes: bool,
    limits: &DiffLimits,
) -> Result<(darlings::report::Report, &'static str)> {
    let b = backend_at(config, root, work_dir, sizes)?;
    // Homes named only in passwd are persisted too: resolve them as the plan does.
    let plan = plan::build(config, &accounts(root)?)?;
    let classifier = Classifier::of_plan(config, &plan);
    let report = lost_state(
        &*b,
        root.as_os_str().as_encoded_bytes(),
        limits,
        &classifier,
    )
    .with_context(|| format!("cannot diff root {}", root.display()))?;
    Ok((report, b.name()))
}

/// What `adopt --all-suggested` adopts: every entry `diff --suggest` proposes, into STORE or
/// the config's first store. A preset is not an entry to adopt: it needs its level's store in
/// the config first, after which adopt finds its entries there by path.
fn suggested_requests(
    config: &config::Config,
    root: &Path,
    work_dir: &Path,
    store: Option<darlings::paths::AbsPath>,
) -> Result<Vec<darlings::adopt::Request>> {
    use darlings::suggest::What;
    let limits = DiffLimits {
        max_entries: usize::MAX,
        time_budget: None,
    };
    let (report, _) = lost_report(config, root, work_dir, true, &limits)?;
    let homes = darlings::suggest::homes_of(&accounts(root)?);
    let s = darlings::suggest::suggest(&report, config, &homes);
    let store = store
        .or_else(|| config.stores.first().map(|s| s.path.clone()))
        .context("adopt --all-suggested: the config has no store; pass --store")?;
    let mut out = Vec::new();
    for x in s.list {
        match x.what {
            What::Preset { name, level } => eprintln!(
                "adopt: not adopting preset {name} (level {level}): add it to presets, with a store for its level in [levels], then adopt its paths"
            ),
            What::Entry { path, kind } => out.push(darlings::adopt::Request {
                path,
                kind: Some(kind),
                store: Some(store.clone()),
            }),
            What::User { user, path, kind } => {
                let home = homes
                    .iter()
                    .find(|(_, u)| *u == user)
                    .map(|(h, _)| h.clone())
                    .unwrap_or_else(|| {
                        darlings::paths::AbsPath::from_normal_bytes(format!("/home/{user}").into_bytes())
                    });
                out.push(darlings::adopt::Request {
                    path: home.join(&path),
                    kind: Some(kind),
                    store: Some(store.clone()),
                });
            }
        }
    }
    Ok(out)
}

/// The target root's accounts, read beneath it without following symlinks.
fn accounts(root: &Path) -> Result<Accounts> {
    darlings::owners::read_accounts(root).map_err(anyhow::Error::from)
}

fn run(cli: Cli) -> Result<()> {
    if let Err(e) = darlings::failpoint::from_env() {
        bail!("{e}");
    }
    let load = || config::load(&cli.config).map_err(anyhow::Error::from);
    let mut stdout = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "darlings", &mut stdout);
        }
        Cmd::Presets { json, markdown } => {
            let table = darlings::presets::all().map_err(anyhow::Error::msg)?;
            if markdown {
                write!(stdout, "{}", darlings::presets::markdown(table))?;
            } else if json {
                serde_json::to_writer_pretty(&mut stdout, &darlings::presets::to_json(table))?;
                writeln!(stdout)?;
            } else {
                for p in table {
                    writeln!(stdout, "{}: {}", p.name, p.about)?;
                    for e in &p.entries {
                        writeln!(
                            stdout,
                            "  {:<9} {} {}: {}",
                            e.level.as_str(),
                            e.kind.as_str(),
                            e.path,
                            e.why
                        )?;
                    }
                }
            }
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut stdout)
                .context("cannot write the man page")?;
        }
        Cmd::Check { root, config_only } => {
            let config = load()?;
            writeln!(
                stdout,
                "config {}: valid ({} backend, {} store(s))",
                cli.config.display(),
                config.root.backend_name(),
                config.stores.len()
            )?;
            for n in &config.notes {
                writeln!(stdout, "note: {n}")?;
            }
            if config_only {
                return Ok(());
            }
            let pre = backend_at(&config, &root, &cli.work_dir, false)?
                .preflight()
                .context("backend preflight failed")?;
            for c in pre.checks {
                writeln!(stdout, "ok: {c}")?;
            }
            for c in darlings::stores::check(&config, &root)
                .context("a store is where the rollback would erase it")?
            {
                writeln!(stdout, "ok: {c}")?;
            }
            let plan = plan::build(&config, &accounts(&root)?)?;
            let out = apply::apply(&plan, &root, apply::Options { dry_run: true })
                .context("the plan would not apply")?;
            writeln!(
                stdout,
                "ok: plan of {} step(s) checks out against {} ({} already bound, {} deferred)",
                plan.steps.len(),
                root.display(),
                out.already,
                out.deferred
            )?;
        }
        Cmd::Plan { root, json } => {
            let config = load()?;
            let plan = plan::build(&config, &accounts(&root)?)?;
            if json {
                plan.write_json(&mut stdout)?;
                for n in &config.notes {
                    eprintln!("note: {n}");
                }
            } else {
                write!(stdout, "{plan}")?;
                for n in &config.notes {
                    writeln!(stdout, "note: {n}")?;
                }
            }
        }
        Cmd::Apply {
            root,
            dry_run,
            utab,
        } => {
            let config = load()?;
            let _lock = (!dry_run)
                .then(|| darlings::lock::acquire(&cli.work_dir, "apply"))
                .transpose()?;
            let plan = plan::build(&config, &accounts(&root)?)?;
            let out = apply::apply(&plan, &root, apply::Options { dry_run })?;
            for a in &out.actions {
                writeln!(stdout, "{a}")?;
            }
            if !dry_run {
                apply::record_marked(&utab, Path::new("/proc/self/mountinfo"), &out.marked)?;
            }
            writeln!(
                stdout,
                "{}: {} bound, {} already in place, {} deferred",
                if dry_run { "dry run" } else { "applied" },
                out.bound,
                out.already,
                out.deferred
            )?;
        }
        Cmd::Adopt {
            paths,
            root,
            store,
            dry_run,
            write_config,
            all_suggested,
            utab,
        } => {
            let parse = |s: &str, what: &str| {
                darlings::paths::AbsPath::parse(s).map_err(|e| anyhow::anyhow!("{what} {s:?} {e}"))
            };
            let store = store.as_deref().map(|s| parse(s, "store")).transpose()?;
            let mut requests = paths
                .iter()
                .map(|p| {
                    Ok(darlings::adopt::Request {
                        path: parse(p, "path")?,
                        kind: None,
                        store: store.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if all_suggested {
                requests.extend(suggested_requests(
                    &load()?,
                    &root,
                    &cli.work_dir,
                    store.clone(),
                )?);
                if requests.is_empty() {
                    writeln!(
                        stdout,
                        "adopt: darlings diff --suggest suggests nothing to adopt"
                    )?;
                    return Ok(());
                }
            }
            let _lock = (!dry_run)
                .then(|| darlings::lock::acquire(&cli.work_dir, "adopt"))
                .transpose()?;
            let out = darlings::adopt::run(
                &darlings::adopt::Options {
                    config: &cli.config,
                    root: &root,
                    dry_run,
                    write_config,
                },
                &requests,
            )?;
            for l in &out.lines {
                writeln!(stdout, "{l}")?;
            }
            if !dry_run {
                apply::record_marked(&utab, Path::new("/proc/self/mountinfo"), &out.marked)?;
            }
        }
        Cmd::Diff {
            root,
            json,
            max_entries,
            lines,
            no_sizes,
            save,
            suggest,
            nix,
            store,
        } => {
            let config = load()?;
            let store = match store {
                Some(s) => Some(darlings::paths::AbsPath::parse(&s).map_err(|e| {
                    anyhow::anyhow!(
                        "store {s:?} {e}; give the store's absolute path, e.g. --store /persist"
                    )
                })?),
                None => None,
            };
            let limits = DiffLimits {
                max_entries: max_entries.unwrap_or(usize::MAX),
                time_budget: None,
            };
            let t = Instant::now();
            let (report, backend_name) =
                lost_report(&config, &root, &cli.work_dir, !no_sizes, &limits)?;
            tracing::info!(
                "diff: {} entries from the {} backend, classified, in {:?}",
                report.entries.len(),
                backend_name,
                t.elapsed()
            );
            let t = Instant::now();
            if suggest {
                let homes = darlings::suggest::homes_of(&accounts(&root)?);
                let s = darlings::suggest::suggest(&report, &config, &homes);
                let store = store
                    .or_else(|| config.stores.first().map(|s| s.path.clone()))
                    .unwrap_or_else(|| {
                        darlings::paths::AbsPath::from_normal_bytes(b"/persist".to_vec())
                    });
                if json {
                    serde_json::to_writer_pretty(&mut stdout, &s.to_json(&store))?;
                    writeln!(stdout)?;
                } else if nix {
                    write!(stdout, "{}", s.to_nix(&store))?;
                } else {
                    write!(stdout, "{}", s.to_toml(&store))?;
                }
            } else if json {
                report.write_json(&mut stdout)?;
            } else {
                write!(stdout, "{}", report.to_text(lines))?;
            }
            tracing::info!("diff: rendered in {:?}", t.elapsed());
            if save {
                let path = darlings::boot::save_report(&config, &root, &report)
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("cannot save the lost-state report")?;
                eprintln!("darlings: report saved as {path}");
                darlings::fleet::after_diff_save(
                    &config,
                    &root,
                    &cli.work_dir,
                    &cli.journal_socket,
                    &report,
                    &path,
                );
            }
            // Freeing one allocation per entry costs milliseconds on a big diff, and the process
            // ends right here: leave it to the kernel.
            std::mem::forget(report);
        }
        Cmd::Boot {
            stage,
            root,
            cmdline,
            dry_run,
            utab,
        } => {
            let line = match std::fs::read(&cmdline) {
                Ok(b) => b,
                Err(e) => {
                    // Reading the command line must not be what stops a boot.
                    tracing::warn!(
                        "boot: cannot read the kernel command line {}: {e}; going by the config alone",
                        cmdline.display()
                    );
                    Vec::new()
                }
            };
            let out = darlings::boot::run(&darlings::boot::Options {
                config: &cli.config,
                work_dir: &cli.work_dir,
                root: &root,
                stage,
                cmdline: &line,
                dry_run,
                utab: &utab,
                journal_socket: &cli.journal_socket,
            });
            for l in &out.lines {
                writeln!(stdout, "{l}")?;
            }
            if dry_run || !cli.quiet {
                write!(stdout, "{}", darlings::boot::render_status(&out.record))?;
            }
            if out.halt {
                let e = out
                    .error
                    .map(|e| anyhow::anyhow!(e))
                    .unwrap_or_else(|| anyhow::anyhow!("boot failed"));
                return Err(e.context("on-failure = \"halt\": stop the boot"));
            }
            if let Some(e) = out.error {
                eprintln!(
                    "darlings: boot failed, {} (on-failure = \"boot-old-root\"): {}",
                    darlings::boot::going_on_with(&out.record),
                    darlings::boot::chain(&*e)
                );
            }
        }
        Cmd::Status { json } => {
            let path = cli.work_dir.join(darlings::boot::RECORD);
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "no boot record at {}: darlings boot did not run in this boot's initrd (or --work-dir is not where it wrote)",
                    path.display()
                )
            })?;
            let rec: darlings::boot::Record =
                serde_json::from_slice(&bytes).with_context(|| {
                    format!("boot record {} is not darlings.boot/1 JSON", path.display())
                })?;
            if json {
                stdout.write_all(&bytes)?;
                if !bytes.ends_with(b"\n") {
                    writeln!(stdout)?;
                }
            } else {
                write!(stdout, "{}", darlings::boot::render_status(&rec))?;
            }
            if rec.outcome == "failed" {
                bail!(
                    "this boot's darlings run failed; see {}",
                    cli.work_dir.join(darlings::boot::FAILED).display()
                );
            }
        }
        Cmd::Report { name, json, root } => {
            let config = load()?;
            let (path, bytes) = darlings::reports::read(&config, &root, name.as_deref(), json)?;
            tracing::info!("report: {path}");
            stdout.write_all(&bytes)?;
        }
        Cmd::Init { dry_run } => {
            let config = load()?;
            let _lock = (!dry_run)
                .then(|| darlings::lock::acquire(&cli.work_dir, "init"))
                .transpose()?;
            let ctx = backends::Ctx {
                root: Path::new("/"),
                sizes: false,
                work_dir: &cli.work_dir,
            };
            let steps = backends::init(&config, &ctx, dry_run).context("init refused")?;
            match steps {
                Some(steps) => {
                    for s in steps {
                        writeln!(stdout, "{}{s}", if dry_run { "would: " } else { "" })?;
                    }
                }
                None => writeln!(
                    stdout,
                    "nothing to initialise: a {} root is blank at every boot",
                    config.root.backend_name()
                )?,
            }
        }
        Cmd::Orphans {
            root,
            json,
            remove,
            dry_run,
        } => {
            let config = load()?;
            let plan = plan::build(&config, &accounts(&root)?)?;
            let found = darlings::orphans::find(&config, &plan, &root)?;
            let Some(remove) = remove else {
                if json {
                    serde_json::to_writer_pretty(&mut stdout, &found.to_json())?;
                    writeln!(stdout)?;
                } else {
                    write!(stdout, "{}", found.to_text())?;
                }
                return Ok(());
            };
            let chosen = if remove.is_empty() {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    bail!("orphans --remove without paths asks on a terminal, and stdin is not one; name the orphans to remove (darlings orphans lists them)");
                }
                let mut chosen = Vec::new();
                for o in &found.orphans {
                    eprint!(
                        "remove {} ({} {}, changed {})? [y/N] ",
                        o.path,
                        o.kind,
                        darlings::report::human(o.usage.bytes),
                        darlings::orphans::utc(o.usage.newest)
                    );
                    let mut answer = String::new();
                    std::io::stdin().read_line(&mut answer)?;
                    if matches!(answer.trim(), "y" | "Y" | "yes") {
                        chosen.push(o);
                    }
                }
                chosen
            } else {
                let mut paths = Vec::new();
                for p in &remove {
                    paths.push(
                        darlings::paths::AbsPath::parse(p)
                            .map_err(|e| anyhow::anyhow!("path {p:?} {e}"))?,
                    );
                }
                found.select(&paths)?
            };
            for o in chosen {
                if dry_run {
                    writeln!(stdout, "would: remove {} ({})", o.path, o.kind)?;
                } else {
                    darlings::orphans::remove(&root, o)
                        .with_context(|| format!("cannot remove the orphan {}", o.path))?;
                    writeln!(stdout, "removed {}", o.path)?;
                }
            }
        }
        Cmd::OldRoots { root, json, sizes } => {
            let config = load()?;
            let b = backend_at(&config, &root, &cli.work_dir, false)?;
            let list = darlings::oldroots::list(&*b, &config, &root, sizes)?;
            if json {
                serde_json::to_writer_pretty(&mut stdout, &darlings::oldroots::to_json(&list))?;
                writeln!(stdout)?;
            } else {
                write!(stdout, "{}", darlings::oldroots::to_text(&list))?;
            }
        }
        Cmd::Restore {
            old,
            paths,
            into,
            root,
            dry_run,
        } => {
            let config = load()?;
            let mut abs = Vec::new();
            for p in &paths {
                abs.push(
                    darlings::paths::AbsPath::parse(p)
                        .map_err(|e| anyhow::anyhow!("path {p:?} {e}"))?,
                );
            }
            let b = backend_at(&config, &root, &cli.work_dir, false)?;
            let plan = plan::build(&config, &accounts(&root)?)?;
            let _lock = (!dry_run)
                .then(|| darlings::lock::acquire(&cli.work_dir, "restore"))
                .transpose()?;
            for l in darlings::restore::restore(&*b, &old, &abs, &root, &plan, into, dry_run)? {
                writeln!(stdout, "{l}")?;
            }
        }
        Cmd::Hold { cancel, dry_run } => {
            let config = load()?;
            let _lock = (!dry_run)
                .then(|| darlings::lock::acquire(&cli.work_dir, "hold"))
                .transpose()?;
            let b = backend_at(&config, Path::new("/"), &cli.work_dir, false)?;
            writeln!(stdout, "{}", darlings::hold::hold(&*b, cancel, dry_run)?)?;
        }
        Cmd::Rollback { root, dry_run } => {
            let config = load()?;
            let _lock = (!dry_run)
                .then(|| darlings::lock::acquire(&cli.work_dir, "rollback"))
                .transpose()?;
            let b = backend_at(&config, &root, &cli.work_dir, false)?;
            let out = b
                .rollback(&RollbackOpts { dry_run })
                .context("rollback refused")?;
            for s in out.steps {
                writeln!(stdout, "{}{s}", if dry_run { "would: " } else { "" })?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A boot's phase lines (info) are its point: they go to kmsg unless -q.
    let verbose = match cli.cmd {
        Cmd::Boot { .. } => cli.verbose.max(1),
        _ => cli.verbose,
    };
    let to_kmsg = logging::init(cli.log, verbose, cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("darlings: error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            if to_kmsg {
                tracing::error!("{}", msg.trim_start_matches("darlings: error: "));
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
