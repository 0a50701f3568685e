use clap::Parser;

use wallflower_nvr::cli::{self, Cli, Command};
use wallflower_nvr::config::Config;
use wallflower_nvr::daemon::logging;
use wallflower_nvr::daemon::{self, Mode};

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Some(Command::CheckConfig) => cli::check_config(&cli::config_path(&cli)),
        Some(Command::Probe { files }) => cli::probe(files),
        Some(Command::User { action }) => cli::user(&cli::config_path(&cli), action),
        Some(Command::Demo { data, listen }) => {
            logging::init();
            exit_code(daemon::run(daemon::demo_config(data, *listen), Mode::Demo))
        }
        Some(Command::Run) | None => {
            logging::init();
            let path = cli::config_path(&cli);
            match Config::load(&path) {
                Ok(config) => exit_code(daemon::run(config, Mode::Config(path))),
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }
    };
    std::process::exit(code);
}

fn exit_code(r: wallflower_nvr::error::Result<i32>) -> i32 {
    r.unwrap_or_else(|e| {
        log::error!("{e}");
        1
    })
}
