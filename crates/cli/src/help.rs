//! Examples and exit codes for every command's `--help`, added to the
//! command tree clap derives (so the man pages and completions, generated
//! from the same tree, carry them too). A command whose own `after_help`
//! already has an `Examples:` or `Exit codes:` paragraph keeps it.

use clap::Command;

/// One command's paragraphs: its path below `cloudimg` (words separated
/// by spaces, "" for `cloudimg` itself), examples, exit codes.
struct Entry {
    path: &'static str,
    examples: &'static str,
    exit_codes: &'static str,
}

/// The exit codes of a command that reports an error with 2 (and is
/// interrupted with 130 or 143) and has no other failure.
const OK_OR_ERROR: &str = "0 done, 2 error (one line on stderr naming the file and the problem),\n\
130/143 interrupted (SIGINT/SIGTERM).";

const ENTRIES: &[Entry] = &[
    Entry {
        path: "",
        examples: "  cloudimg image build -o disk.raw\n  \
cloudimg package disk.raw -o out --all\n  \
cloudimg verify --manifest out/manifest.json\n  \
cloudimg boot out/capos.qcow2 --firmware both",
        exit_codes: "0 ok, 1 defects found, not ready or boot failed, 2 error,\n\
130/143 interrupted.",
    },
    Entry {
        path: "package",
        examples: "  cloudimg package disk.raw                 # GCP and AWS shapes\n  \
cloudimg package disk.raw --all -o out    # every shape\n  \
cloudimg package disk.qcow2 --azure --json > made.json\n  \
(cd out && sha256sum -c SHA256SUMS)",
        exit_codes: "0 every shape made and verified, 2 error (a shape could not be made\n\
or verified: the others are still made), 130/143 interrupted.",
    },
    Entry {
        path: "verify",
        examples: "  cloudimg verify --manifest out/manifest.json\n  \
cloudimg verify out/*\n  \
cloudimg verify disk.raw.tar.gz --expect-sha256 HEX --json",
        exit_codes: "0 sound, 1 defects found, 2 unusable (cannot be decoded) or error.",
    },
    Entry {
        path: "check",
        examples: "  cloudimg check disk.raw\n  \
cloudimg check out/capos.vhdx --provider gcp,aws --json",
        exit_codes: "0 every requested path ready, 1 some path not ready, 2 the image\n\
could not be read.",
    },
    Entry {
        path: "inspect",
        examples: "  cloudimg inspect disk.raw\n  \
cloudimg inspect out/capos.qcow2 --json",
        exit_codes: OK_OR_ERROR,
    },
    Entry {
        path: "image",
        examples: "  cloudimg image build -o disk.raw\n  \
cloudimg image build --limine limine-8.2.0 -o capos.raw --json",
        exit_codes: OK_OR_ERROR,
    },
    Entry {
        path: "image build",
        examples: "  cloudimg image build -o demo.raw\n  \
cloudimg image build --loader limine --limine limine-8.2.0 -o capos.raw\n  \
cloudimg image build --limine limine-10.4.0 --bios-boot-partition \\\n      \
--hybrid-mbr -o capos.raw",
        exit_codes: "0 written, 2 error (an existing output is refused without --force),\n\
130/143 interrupted.",
    },
    Entry {
        path: "boot",
        examples: "  cloudimg boot disk.raw\n  \
cloudimg boot out/capos-aws.vhd --firmware bios --log evidence",
        exit_codes: "0 every boot reached its landmark, 1 a boot did not, 2 error,\n\
130/143 interrupted.",
    },
    Entry {
        path: "cloud",
        examples: "  cloudimg cloud gcp --project P --bucket B --artifact out/disk.raw.tar.gz\n  \
cloudimg cloud aws --bucket B --artifact out/capos-aws.vmdk --plan\n  \
cloudimg cloud teardown target/cloud-evidence/RUN/resources.json",
        exit_codes: "0 booted (or planned, or torn down), 1 the instance ran but the\n\
landmark did not appear in time, 2 error, 130 interrupted.",
    },
    Entry {
        path: "cloud gcp",
        examples: "  cloudimg cloud gcp --project P --bucket B --artifact out/disk.raw.tar.gz\n  \
cloudimg cloud gcp --project P --bucket B --artifact out/disk.raw.tar.gz --plan",
        exit_codes: "0 booted (or planned), 1 the instance ran but the landmark did not\n\
appear in time, 2 error, 130 interrupted.",
    },
    Entry {
        path: "cloud aws",
        examples: "  cloudimg cloud aws --bucket B --artifact out/capos-aws.vmdk\n  \
cloudimg cloud aws --bucket B --artifact out/capos-aws.raw --boot-mode bios --plan",
        exit_codes: "0 booted (or planned), 1 the instance ran but the landmark did not\n\
appear in time, 2 error, 130 interrupted.",
    },
    Entry {
        path: "cloud azure",
        examples: "  cloudimg cloud azure --resource-group RG --storage-account SA \\\n      \
--container C --location westeurope --artifact out/capos-azure.vhd\n  \
cloudimg cloud azure ... --plan --json",
        exit_codes: "0 booted (or planned), 1 the VM ran but the landmark did not\n\
appear in time, 2 error, 130 interrupted.",
    },
    Entry {
        path: "cloud teardown",
        examples: "  cloudimg cloud teardown target/cloud-evidence/gcp-RUN/resources.json",
        exit_codes: "0 every resource deleted or already gone, 2 some could not be\n\
deleted (run it again once fixed), 130/143 interrupted.",
    },
    Entry {
        path: "generate",
        examples: "  cloudimg generate man target/man\n  \
cloudimg generate completions bash > cloudimg.bash",
        exit_codes: OK_OR_ERROR,
    },
    Entry {
        path: "generate man",
        examples: "  cloudimg generate man target/man && man -l target/man/cloudimg-package.1",
        exit_codes: OK_OR_ERROR,
    },
    Entry {
        path: "generate completions",
        examples: "  cloudimg generate completions bash > cloudimg.bash\n  \
cloudimg generate completions zsh > _cloudimg\n  \
cloudimg generate completions fish > cloudimg.fish",
        exit_codes: OK_OR_ERROR,
    },
];

/// `cmd` (the command at `path`) and its subcommands with their examples
/// and exit codes appended to their `after_help` (and `after_long_help`).
pub fn decorate(cmd: Command) -> Command {
    decorate_at(cmd, "")
}

fn decorate_at(mut cmd: Command, path: &str) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |c| decorate_at(c, &sub_path));
    }
    let Some(e) = ENTRIES.iter().find(|e| e.path == path) else {
        return cmd;
    };
    let own = cmd.get_after_help().map(|s| s.to_string());
    let mut text = own.clone().unwrap_or_default();
    let mut add = |heading: &str, body: &str| {
        if !text.contains(heading) {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(heading);
            text.push('\n');
            text.push_str(body);
        }
    };
    add("Examples:", e.examples);
    let codes: Vec<String> = e.exit_codes.lines().map(|l| format!("  {l}")).collect();
    add("Exit codes:", &codes.join("\n"));
    let long = match cmd.get_after_long_help().map(|s| s.to_string()) {
        Some(l) if l != own.clone().unwrap_or_default() => format!("{l}\n\n{text}"),
        _ => text.clone(),
    };
    cmd.after_help(text).after_long_help(long)
}
