//! The top of the house: one parsed command line ([`crate::cli`]) to the
//! layer that does it, and the result into words on the output. Errors
//! leave here as `anyhow` with what the user can do about them
//! ([`hint`]), in terms of the CLI's own commands.

mod device;
mod hint;
mod setup;
mod simulate;
mod status;
mod trace;

use std::io::Write;

use anyhow::Result;

use crate::{
    cli::{Cli, Command, ProbeKind, TopArgs},
    probes::Flavour,
    sysfs::{RealSysfs, Sysfs},
    top::TopOptions,
};

/// Runs one parsed command line, writing what it shows to `out`.
pub fn run(cli: Cli, sys: &Sysfs, out: &mut dyn Write) -> Result<()> {
    let result = match cli.command {
        Command::Status(a) => status::status(sys, &a, out),
        Command::Writeback(a) => device::writeback(sys, &a, out),
        Command::Idle(a) => device::idle(sys, &a, out),
        Command::Limit(a) => device::limit(sys, &a, out),
        Command::Batch(a) => device::batch(sys, &a, out),
        Command::Setup(a) => setup::setup(sys, &a, out),
        Command::Reset(a) => setup::reset(sys, &a, out),
        Command::Recompress(a) => device::recompress(sys, &a, out),
        Command::Top(a) => crate::top::run(sys, &top_options(&a), out),
        Command::Daemon(a) if a.setup_only => crate::daemon::setup_only(sys, &a.config),
        Command::Daemon(a) => crate::daemon::run(sys, &a.config, a.check, a.fake),
        Command::Simulate(a) => simulate::run(&a, out),
        Command::Trace(t) => trace::run(&t, out),
    };
    result.map_err(hint::add)
}

/// `zramctl`'s `main`: parses the command line, runs it on the sysfs tree
/// it names, prints an error as `zramctl: error: ...`. Without one of our
/// commands the arguments are util-linux's ([`crate::ulcompat`]).
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    // No command (or a device first): util-linux's zramctl forms.
    let argv: Option<Vec<String>> = std::env::args_os().map(|a| a.into_string().ok()).collect();
    if let Some([argv0, args @ ..]) = argv.as_deref()
        && crate::ulcompat::is_util_linux_form(args)
    {
        return std::process::ExitCode::from(crate::ulcompat::main(argv0, args.to_vec()) as u8);
    }
    let cli = Cli::parse();
    let sys = Sysfs::new(cli.sysfs_root.clone(), RealSysfs);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(cli, &sys, &mut out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`zramctl status | head`) is not an error worth a message.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("zramctl: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn top_options(a: &TopArgs) -> TopOptions {
    TopOptions {
        device: a.device.clone(),
        interval_secs: a.interval,
        once: a.once,
        json: a.json,
        record: a.record.clone(),
        latency_devs: a.latency_devs.clone(),
        flavour: match a.probes {
            ProbeKind::Auto => None,
            ProbeKind::TpBtf => Some(Flavour::TpBtf),
            ProbeKind::RawTp => Some(Flavour::RawTp),
        },
    }
}
