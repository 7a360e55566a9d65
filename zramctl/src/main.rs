use std::process::ExitCode;

use clap::Parser as _;
use zramctl::{
    cli::Cli,
    commands,
    sysfs::{RealSysfs, Sysfs},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sys = Sysfs::new(cli.sysfs_root.clone(), RealSysfs);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match commands::run(cli, &sys, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`zramctl status | head`) is not an error worth a message.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("zramctl: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
