//! Reading what the `aws` CLI prints (`--output json`): the shapes of
//! the EC2 API's responses as the CLI reference's examples show them.

use crate::error::{Error, ErrorKind, Result};

/// The state of an import task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportStatus {
    /// `active`, `completed`, `deleting`, `deleted`.
    pub status: String,
    /// Percent, while active.
    pub progress: Option<String>,
    /// Detail (`downloading/converting`, `ClientError: ...`).
    pub message: Option<String>,
    /// The snapshot, once completed.
    pub snapshot_id: Option<String>,
}

pub(crate) fn parse_json(stdout: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(stdout).map_err(|e| {
        Error::new(
            ErrorKind::BadOutput,
            format!("aws ec2 {what} printed no JSON: {e}"),
        )
    })
}

fn field(v: &serde_json::Value, what: &str, key: &str) -> Result<String> {
    v[key].as_str().map(str::to_string).ok_or_else(|| {
        Error::new(
            ErrorKind::BadOutput,
            format!("aws ec2 {what} output has no {key}"),
        )
    })
}

/// `ImportTaskId` from `import-snapshot`.
pub fn parse_import_task(stdout: &str) -> Result<String> {
    field(
        &parse_json(stdout, "import-snapshot")?,
        "import-snapshot",
        "ImportTaskId",
    )
}

/// The task's `SnapshotTaskDetail` from `describe-import-snapshot-tasks`.
pub fn parse_import_status(stdout: &str) -> Result<ImportStatus> {
    let v = parse_json(stdout, "describe-import-snapshot-tasks")?;
    let d = &v["ImportSnapshotTasks"][0]["SnapshotTaskDetail"];
    if d.is_null() {
        return Err(Error::new(
            ErrorKind::BadOutput,
            "aws ec2 describe-import-snapshot-tasks returned no task",
        ));
    }
    let s = |k: &str| d[k].as_str().map(str::to_string);
    Ok(ImportStatus {
        status: s("Status").unwrap_or_default(),
        progress: s("Progress"),
        message: s("StatusMessage"),
        snapshot_id: s("SnapshotId"),
    })
}

/// `ImageId` from `register-image`.
pub fn parse_image_id(stdout: &str) -> Result<String> {
    field(
        &parse_json(stdout, "register-image")?,
        "register-image",
        "ImageId",
    )
}

/// The first `InstanceId` from `run-instances`.
pub fn parse_instance_id(stdout: &str) -> Result<String> {
    let v = parse_json(stdout, "run-instances")?;
    field(&v["Instances"][0], "run-instances", "InstanceId")
}

/// The (CLI-decoded) `Output` of `get-console-output`; absent means
/// nothing yet.
pub fn parse_console(stdout: &str) -> Result<String> {
    let v = parse_json(stdout, "get-console-output")?;
    Ok(v["Output"].as_str().unwrap_or_default().to_string())
}

/// Image ids from `describe-images`.
pub fn parse_image_ids(stdout: &str) -> Result<Vec<String>> {
    let v = parse_json(stdout, "describe-images")?;
    Ok(v["Images"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["ImageId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Instance ids from `describe-instances`.
pub fn parse_instance_ids(stdout: &str) -> Result<Vec<String>> {
    let v = parse_json(stdout, "describe-instances")?;
    let mut ids = Vec::new();
    for r in v["Reservations"].as_array().into_iter().flatten() {
        for i in r["Instances"].as_array().into_iter().flatten() {
            if let Some(id) = i["InstanceId"].as_str() {
                ids.push(id.to_string());
            }
        }
    }
    Ok(ids)
}
