//! `cloudimg inspect FILE`: format, sizes, header facts and partition
//! table, without decoding the whole file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cloudimg_disk::inspect::{inspect, Inspection};
use cloudimg_disk::layout::PartitionTable;

/// Show a file's format, sizes, header facts and GPT layout.
///
/// Reads only headers and partition tables; `verify` decodes in full.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image or artifact.
    pub file: PathBuf,
    /// Print JSON (`cloudimg.inspect/1`) on stdout.
    #[arg(long)]
    pub json: bool,
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The `cloudimg.inspect/1` document: the inspection with its sizes under
/// `_bytes` keys, and each GPT partition's size.
fn document(ins: &Inspection) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(ins)?;
    super::rename_key(&mut v, "file_size", "file_size_bytes");
    super::rename_key(&mut v, "allocated_size", "allocated_bytes");
    super::rename_key(&mut v, "virtual_size", "virtual_size_bytes");
    if let Some(PartitionTable::Gpt(g)) = &ins.partition_table {
        let t = &mut v["partition_table"];
        super::rename_key(t, "entry_size", "entry_size_bytes");
        if let Some(parts) = t["partitions"].as_array_mut() {
            for (j, p) in parts.iter_mut().zip(&g.partitions) {
                j["size_bytes"] = serde_json::json!(p.size_bytes());
            }
        }
    }
    Ok(v)
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ins = inspect(&args.file)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        drop(out);
        super::print_json("inspect", &document(&ins)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "file:                {}", ins.path.display())?;
    writeln!(out, "format:              {}", ins.format)?;
    writeln!(
        out,
        "file size:           {} ({})",
        ins.file_size,
        human(ins.file_size)
    )?;
    writeln!(out, "allocated:           {}", human(ins.allocated_size))?;
    if let Some(v) = ins.virtual_size {
        writeln!(out, "virtual size:        {v} ({})", human(v))?;
    }
    for (k, v) in &ins.details {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        writeln!(out, "{:<20} {v}", format!("{}:", k.replace('_', " ")))?;
    }
    match &ins.partition_table {
        Some(PartitionTable::Gpt(g)) => {
            writeln!(
                out,
                "partition table: GPT ({} copy), disk GUID {}, usable LBA {}..={}, {} entries",
                g.source, g.disk_guid, g.first_usable_lba, g.last_usable_lba, g.num_entries
            )?;
            writeln!(
                out,
                "  {:>2}  {:>12}  {:>12}  {:>10}  {:<22}  NAME",
                "#", "FIRST LBA", "LAST LBA", "SIZE", "TYPE"
            )?;
            for p in &g.partitions {
                let ty = p
                    .type_name
                    .map_or_else(|| p.type_guid.to_string(), str::to_string);
                writeln!(
                    out,
                    "  {:>2}  {:>12}  {:>12}  {:>10}  {:<22}  {}",
                    p.index,
                    p.first_lba,
                    p.last_lba,
                    human(p.size_bytes()),
                    ty,
                    p.name
                )?;
            }
        }
        Some(PartitionTable::Mbr(m)) => {
            writeln!(out, "partition table: MBR")?;
            for e in &m.partitions {
                writeln!(
                    out,
                    "  {:>2}  type {:#04x}  start LBA {:>12}  {:>10}{}",
                    e.index,
                    e.kind,
                    e.start_lba,
                    human(u64::from(e.sectors) * 512),
                    if e.status == 0x80 { "  active" } else { "" }
                )?;
            }
        }
        Some(PartitionTable::None) => writeln!(out, "partition table: none")?,
        None => {}
    }
    if let Some(e) = &ins.partition_table_error {
        writeln!(out, "partition table: unreadable: {e}")?;
    }
    Ok(ExitCode::SUCCESS)
}
