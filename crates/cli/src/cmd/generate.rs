//! `cloudimg generate man DIR` and `cloudimg generate completions SHELL`:
//! man pages and shell completions made from the command-line definition
//! itself (with its examples and exit codes), by clap_mangen and
//! clap_complete. `make install` runs them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Command;

/// Write man pages or shell completions.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Write a man page (section 1) for cloudimg and each subcommand into
    /// DIR: cloudimg.1, cloudimg-package.1, cloudimg-image-build.1, ...
    Man {
        /// The directory (created if missing; existing pages replaced).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completion script for SHELL on stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Man { dir } => man(&dir)?,
        What::Completions { shell } => {
            let mut cmd = crate::command();
            clap_complete::generate(shell, &mut cmd, "cloudimg", &mut std::io::stdout().lock());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Write the man pages of `cloudimg` and every visible subcommand.
fn man(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = crate::command();
    // Every subcommand's usage line names its full path
    // (`cloudimg image build`), as clap does once the tree is built.
    cmd.build();
    write_pages(&cmd, "cloudimg", dir)
}

/// The page of `cmd` (named `name`.1) and its subcommands' pages.
fn write_pages(cmd: &Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name)
        .render(&mut bytes)?;
    let path = dir.join(format!("{name}.1"));
    write_replacing(&path, &bytes)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

/// Write `bytes` to `path` through a temporary file beside it (readable by
/// all, as man pages are), renamed over it once written.
fn write_replacing(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let out = cloudimg_disk::io::OutputFile::create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut f = out.file();
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    out.commit()
        .with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
