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
use darlings::report::lost_state;
use darlings::{apply, backends, logging, plan};
use darlings_backends::{DiffLimits, RollbackOpts};

#[derive(Parser)]
#[command(
    name = "darlings",
    version,
    about = "Erase your darlings: roll the root back to blank and keep only what you chose"
)]
struct Cli {
    #[command(flatten)]
    g: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The options every subcommand takes.
#[derive(clap::Args)]
struct Global {
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
}

impl Global {
    fn load(&self) -> Result<config::Config> {
        config::load(&self.config).map_err(anyhow::Error::from)
    }
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
    Adopt(AdoptArgs),
    /// What the root holds that the blank does not: lost, persisted or ignored.
    Diff(DiffArgs),
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

#[derive(clap::Args)]
struct DiffArgs {
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
}

#[derive(clap::Args)]
struct AdoptArgs {
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

/// The lost-state report of ROOT, as `darlings diff` prints it.
fn lost_report(
    config: &config::Config,
    root: &Path,
    work_dir: &Path,
    sizes: bool,
    limits: &DiffLimits,
) -> Result<(darlings::report::Report, &'static str)> {
    let b = backend_at(config, root, work_dir, sizes)?;
    let report = lost_state(
        config,
        &*b,
        &accounts(root)?,
        root.as_os_str().as_encoded_bytes(),
        limits,
    )
    .with_context(|| {
        format!(
            "cannot make the lost-state report of root {}",
            root.display()
        )
    })?;
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
    let g = &cli.g;
    // One write per line would be a system call per bind on a boot's dry run, or per entry.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let w = &mut out;
    let done = match cli.cmd {
        Cmd::Completions { shell } => completions(w, shell),
        Cmd::Presets { json, markdown } => presets(w, json, markdown),
        Cmd::Man => man(w),
        Cmd::Check { root, config_only } => check(g, w, root, config_only),
        Cmd::Plan { root, json } => plan(g, w, root, json),
        Cmd::Apply {
            root,
            dry_run,
            utab,
        } => apply(g, w, root, dry_run, utab),
        Cmd::Adopt(a) => adopt(g, w, a),
        Cmd::Diff(a) => diff(g, w, a),
        Cmd::Boot {
            stage,
            root,
            cmdline,
            dry_run,
            utab,
        } => boot(g, w, stage, root, cmdline, dry_run, utab),
        Cmd::Status { json } => status(g, w, json),
        Cmd::Report { name, json, root } => report(g, w, name, json, root),
        Cmd::Init { dry_run } => init(g, w, dry_run),
        Cmd::Orphans {
            root,
            json,
            remove,
            dry_run,
        } => orphans(g, w, root, json, remove, dry_run),
        Cmd::OldRoots { root, json, sizes } => old_roots(g, w, root, json, sizes),
        Cmd::Restore {
            old,
            paths,
            into,
            root,
            dry_run,
        } => restore(g, w, old, paths, into, root, dry_run),
        Cmd::Hold { cancel, dry_run } => hold(g, w, cancel, dry_run),
        Cmd::Rollback { root, dry_run } => rollback(g, w, root, dry_run),
    };
    // What was written before a failure is still printed, before the error.
    let flushed = out.flush().context("cannot write to stdout");
    done.and(flushed)
}

/// `darlings completions`.
fn completions(mut w: &mut dyn Write, shell: clap_complete::Shell) -> Result<()> {
    clap_complete::generate(shell, &mut Cli::command(), "darlings", &mut w);
    Ok(())
}

/// `darlings presets`.
fn presets(mut w: &mut dyn Write, json: bool, markdown: bool) -> Result<()> {
    let table = darlings::presets::all().map_err(anyhow::Error::msg)?;
    if markdown {
        write!(w, "{}", darlings::presets::markdown(table))?;
    } else if json {
        serde_json::to_writer_pretty(&mut w, &darlings::presets::to_json(table))?;
        writeln!(w)?;
    } else {
        for p in table {
            writeln!(w, "{}: {}", p.name, p.about)?;
            for e in &p.entries {
                writeln!(
                    w,
                    "  {:<9} {} {}: {}",
                    e.level.as_str(),
                    e.kind.as_str(),
                    e.path,
                    e.why
                )?;
            }
        }
    }
    Ok(())
}

/// `darlings man`.
fn man(mut w: &mut dyn Write) -> Result<()> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut w)
        .context("cannot write the man page")?;
    Ok(())
}

/// `darlings check`.
fn check(g: &Global, w: &mut dyn Write, root: PathBuf, config_only: bool) -> Result<()> {
    let config = g.load()?;
    writeln!(
        w,
        "config {}: valid ({} backend, {} store(s))",
        g.config.display(),
        config.root.backend_name(),
        config.stores.len()
    )?;
    for n in &config.notes {
        writeln!(w, "note: {n}")?;
    }
    if config_only {
        return Ok(());
    }
    let pre = backend_at(&config, &root, &g.work_dir, false)?
        .preflight()
        .context("backend preflight failed")?;
    for c in pre.checks {
        writeln!(w, "ok: {c}")?;
    }
    for c in darlings::stores::check(&config, &root)
        .context("a store is where the rollback would erase it")?
    {
        writeln!(w, "ok: {c}")?;
    }
    let plan = plan::build(&config, &accounts(&root)?)?;
    let out = apply::apply(&plan, &root, apply::Options { dry_run: true })
        .context("the plan would not apply")?;
    writeln!(
        w,
        "ok: plan of {} step(s) checks out against {} ({} already bound, {} deferred)",
        plan.steps.len(),
        root.display(),
        out.already,
        out.deferred
    )?;
    Ok(())
}

/// `darlings plan`.
fn plan(g: &Global, mut w: &mut dyn Write, root: PathBuf, json: bool) -> Result<()> {
    let config = g.load()?;
    let plan = plan::build(&config, &accounts(&root)?)?;
    if json {
        plan.write_json(&mut w)?;
        for n in &config.notes {
            eprintln!("note: {n}");
        }
    } else {
        write!(w, "{plan}")?;
        for n in &config.notes {
            writeln!(w, "note: {n}")?;
        }
    }
    Ok(())
}

/// `darlings apply`.
fn apply(g: &Global, w: &mut dyn Write, root: PathBuf, dry_run: bool, utab: PathBuf) -> Result<()> {
    let config = g.load()?;
    let _lock = (!dry_run)
        .then(|| darlings::lock::acquire(&g.work_dir, "apply"))
        .transpose()?;
    let plan = plan::build(&config, &accounts(&root)?)?;
    let out = apply::apply(&plan, &root, apply::Options { dry_run })?;
    for a in &out.actions {
        writeln!(w, "{a}")?;
    }
    if !dry_run {
        apply::record_marked(&utab, Path::new("/proc/self/mountinfo"), &out.marked)?;
    }
    writeln!(
        w,
        "{}: {} bound, {} already in place, {} deferred",
        if dry_run { "dry run" } else { "applied" },
        out.bound,
        out.already,
        out.deferred
    )?;
    Ok(())
}

/// `darlings adopt`.
fn adopt(g: &Global, w: &mut dyn Write, a: AdoptArgs) -> Result<()> {
    let AdoptArgs {
        paths,
        root,
        store,
        dry_run,
        write_config,
        all_suggested,
        utab,
    } = a;
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
            &g.load()?,
            &root,
            &g.work_dir,
            store.clone(),
        )?);
        if requests.is_empty() {
            writeln!(
                w,
                "adopt: darlings diff --suggest suggests nothing to adopt"
            )?;
            return Ok(());
        }
    }
    let _lock = (!dry_run)
        .then(|| darlings::lock::acquire(&g.work_dir, "adopt"))
        .transpose()?;
    let out = darlings::adopt::run(
        &darlings::adopt::Options {
            config: &g.config,
            root: &root,
            dry_run,
            write_config,
        },
        &requests,
    )?;
    for l in &out.lines {
        writeln!(w, "{l}")?;
    }
    if !dry_run {
        apply::record_marked(&utab, Path::new("/proc/self/mountinfo"), &out.marked)?;
    }
    Ok(())
}

/// `darlings diff`.
fn diff(g: &Global, mut w: &mut dyn Write, a: DiffArgs) -> Result<()> {
    let DiffArgs {
        root,
        json,
        max_entries,
        lines,
        no_sizes,
        save,
        suggest,
        nix,
        store,
    } = a;
    let config = g.load()?;
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
    let (report, backend_name) = lost_report(&config, &root, &g.work_dir, !no_sizes, &limits)?;
    tracing::info!(
        "diff: {} entries from the {} backend, classified, in {:?}",
        report.len(),
        backend_name,
        t.elapsed()
    );
    let t = Instant::now();
    if suggest {
        let homes = darlings::suggest::homes_of(&accounts(&root)?);
        let s = darlings::suggest::suggest(&report, &config, &homes);
        let store = store
            .or_else(|| config.stores.first().map(|s| s.path.clone()))
            .unwrap_or_else(|| darlings::paths::AbsPath::from_normal_bytes(b"/persist".to_vec()));
        if json {
            serde_json::to_writer_pretty(&mut w, &s.to_json(&store))?;
            writeln!(w)?;
        } else if nix {
            write!(w, "{}", s.to_nix(&store))?;
        } else {
            write!(w, "{}", s.to_toml(&store))?;
        }
    } else if json {
        report.write_json(&mut w)?;
    } else {
        write!(w, "{}", report.to_text(lines))?;
    }
    tracing::info!("diff: rendered in {:?}", t.elapsed());
    if save {
        let path = darlings::report::store::save_report(&config, &root, &report)
            .context("cannot save the lost-state report")?;
        eprintln!("darlings: report saved as {path}");
        darlings::fleet::after_diff_save(
            &config,
            &root,
            &g.work_dir,
            &g.journal_socket,
            &report,
            &path,
        );
    }
    report.forget();
    Ok(())
}

/// `darlings boot`.
fn boot(
    g: &Global,
    w: &mut dyn Write,
    stage: darlings::boot::Stage,
    root: PathBuf,
    cmdline: PathBuf,
    dry_run: bool,
    utab: PathBuf,
) -> Result<()> {
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
        config: &g.config,
        work_dir: &g.work_dir,
        root: &root,
        stage,
        cmdline: &line,
        dry_run,
        utab: &utab,
        journal_socket: &g.journal_socket,
    });
    for l in &out.lines {
        writeln!(w, "{l}")?;
    }
    if dry_run || !g.quiet {
        write!(w, "{}", darlings::boot::render_status(&out.record))?;
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
            darlings::error::chain(&e)
        );
    }
    Ok(())
}

/// `darlings status`.
fn status(g: &Global, w: &mut dyn Write, json: bool) -> Result<()> {
    let path = g.work_dir.join(darlings::boot::RECORD);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "no boot record at {}: darlings boot did not run in this boot's initrd (or --work-dir is not where it wrote)",
            path.display()
        )
    })?;
    let rec: darlings::boot::Record = serde_json::from_slice(&bytes)
        .with_context(|| format!("boot record {} is not darlings.boot/1 JSON", path.display()))?;
    if json {
        w.write_all(&bytes)?;
        if !bytes.ends_with(b"\n") {
            writeln!(w)?;
        }
    } else {
        write!(w, "{}", darlings::boot::render_status(&rec))?;
    }
    if rec.outcome == darlings::boot::Outcome::Failed {
        bail!(
            "this boot's darlings run failed; see {}",
            g.work_dir.join(darlings::boot::FAILED).display()
        );
    }
    Ok(())
}

/// `darlings report`.
fn report(
    g: &Global,
    w: &mut dyn Write,
    name: Option<String>,
    json: bool,
    root: PathBuf,
) -> Result<()> {
    let config = g.load()?;
    let (path, bytes) = darlings::report::store::read(&config, &root, name.as_deref(), json)?;
    tracing::info!("report: {path}");
    w.write_all(&bytes)?;
    Ok(())
}

/// `darlings init`.
fn init(g: &Global, w: &mut dyn Write, dry_run: bool) -> Result<()> {
    let config = g.load()?;
    let _lock = (!dry_run)
        .then(|| darlings::lock::acquire(&g.work_dir, "init"))
        .transpose()?;
    let ctx = backends::Ctx {
        root: Path::new("/"),
        sizes: false,
        work_dir: &g.work_dir,
    };
    let steps = backends::init(&config, &ctx, dry_run).context("init refused")?;
    match steps {
        Some(steps) => {
            for s in steps {
                writeln!(w, "{}{s}", if dry_run { "would: " } else { "" })?;
            }
        }
        None => writeln!(
            w,
            "nothing to initialise: a {} root is blank at every boot",
            config.root.backend_name()
        )?,
    }
    Ok(())
}

/// `darlings orphans`.
fn orphans(
    g: &Global,
    mut w: &mut dyn Write,
    root: PathBuf,
    json: bool,
    remove: Option<Vec<String>>,
    dry_run: bool,
) -> Result<()> {
    let config = g.load()?;
    let plan = plan::build(&config, &accounts(&root)?)?;
    let found = darlings::orphans::find(&config, &plan, &root)?;
    let Some(remove) = remove else {
        if json {
            serde_json::to_writer_pretty(&mut w, &found.to_json())?;
            writeln!(w)?;
        } else {
            write!(w, "{}", found.to_text())?;
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
                darlings::show::human(o.usage.bytes),
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
            writeln!(w, "would: remove {} ({})", o.path, o.kind)?;
        } else {
            darlings::orphans::remove(&root, o)
                .with_context(|| format!("cannot remove the orphan {}", o.path))?;
            writeln!(w, "removed {}", o.path)?;
        }
    }
    Ok(())
}

/// `darlings old-roots`.
fn old_roots(
    g: &Global,
    mut w: &mut dyn Write,
    root: PathBuf,
    json: bool,
    sizes: bool,
) -> Result<()> {
    let config = g.load()?;
    let b = backend_at(&config, &root, &g.work_dir, false)?;
    let list = darlings::oldroots::list(&*b, &config, &root, sizes)?;
    if json {
        serde_json::to_writer_pretty(&mut w, &darlings::oldroots::to_json(&list))?;
        writeln!(w)?;
    } else {
        write!(w, "{}", darlings::oldroots::to_text(&list))?;
    }
    Ok(())
}

/// `darlings restore`.
fn restore(
    g: &Global,
    w: &mut dyn Write,
    old: String,
    paths: Vec<String>,
    into: darlings::restore::Into,
    root: PathBuf,
    dry_run: bool,
) -> Result<()> {
    let config = g.load()?;
    let mut abs = Vec::new();
    for p in &paths {
        abs.push(
            darlings::paths::AbsPath::parse(p).map_err(|e| anyhow::anyhow!("path {p:?} {e}"))?,
        );
    }
    let b = backend_at(&config, &root, &g.work_dir, false)?;
    let plan = plan::build(&config, &accounts(&root)?)?;
    let _lock = (!dry_run)
        .then(|| darlings::lock::acquire(&g.work_dir, "restore"))
        .transpose()?;
    for l in darlings::restore::restore(&*b, &old, &abs, &root, &plan, into, dry_run)? {
        writeln!(w, "{l}")?;
    }
    Ok(())
}

/// `darlings hold`.
fn hold(g: &Global, w: &mut dyn Write, cancel: bool, dry_run: bool) -> Result<()> {
    let config = g.load()?;
    let _lock = (!dry_run)
        .then(|| darlings::lock::acquire(&g.work_dir, "hold"))
        .transpose()?;
    let b = backend_at(&config, Path::new("/"), &g.work_dir, false)?;
    writeln!(w, "{}", darlings::hold::hold(&*b, cancel, dry_run)?)?;
    Ok(())
}

/// `darlings rollback`.
fn rollback(g: &Global, w: &mut dyn Write, root: PathBuf, dry_run: bool) -> Result<()> {
    let config = g.load()?;
    let _lock = (!dry_run)
        .then(|| darlings::lock::acquire(&g.work_dir, "rollback"))
        .transpose()?;
    let b = backend_at(&config, &root, &g.work_dir, false)?;
    let out = b
        .rollback(&RollbackOpts { dry_run })
        .context("rollback refused")?;
    for s in out.steps {
        writeln!(w, "{}{s}", if dry_run { "would: " } else { "" })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A boot's phase lines (info) are its point: they go to kmsg unless -q.
    let verbose = match cli.cmd {
        Cmd::Boot { .. } => cli.g.verbose.max(1),
        _ => cli.g.verbose,
    };
    let to_kmsg = logging::init(cli.g.log, verbose, cli.g.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("darlings: error: {}", darlings::error::chain(e.as_ref()));
            if to_kmsg {
                tracing::error!("{}", msg.trim_start_matches("darlings: error: "));
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
