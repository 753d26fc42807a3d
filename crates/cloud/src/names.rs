//! The syntax of every name and id cloudimg passes to a provider CLI, as
//! the provider defines it (or stricter), so that nothing read from a
//! journal, a flag or a CLI's answer can be a wildcard (`*`, `?`, `[`),
//! an option (`-x`, `--dry-run`), or carry whitespace or control
//! characters. Each check returns the rule it enforces, for the error.
//!
//! Sources (\[U\]: could not be confirmed from a primary source, the
//! rule is the stricter reading):
//! - EC2 ids: "Prior to January 2016, the IDs assigned to newly created
//!   resources of certain resource types used 8 characters after the
//!   hyphen (for example, i-1a2b3c4d). From January 2016 to June 2018 ...
//!   17 characters after the hyphen (for example, i-1234567890abcdef0)"
//!   (docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html, as
//!   quoted by the `aws-resource-id` crate's documentation). That the
//!   characters are hexadecimal is from every documented example
//!   (`i-1234567890abcdef0`, `snap-1234567890abcdef0`) \[U\]. Import task
//!   ids (`import-snap-1234567890abcdef0` in the CLI reference) are taken
//!   as 8 or 17 lowercase letters and digits: older examples hold
//!   non-hex letters \[U\].
//! - AMI names: "3-128 alphanumeric characters, parentheses (()), square
//!   brackets ([]), spaces ( ), periods (.), slashes (/), dashes (-),
//!   single quotes ('), at-signs (@), or underscores(_)" (EC2
//!   `RegisterImage` API reference); cloudimg also refuses spaces and a
//!   leading `-`.
//! - S3 buckets: "between 3 (min) and 63 (max) characters long ... only
//!   lowercase letters, numbers, dots (.), and hyphens (-) ... begin and
//!   end with a letter or number ... not contain two adjacent periods ...
//!   not be formatted as an IP address ... not start with the prefix
//!   xn--, sthree-, amzn-s3-demo- ... not end with the suffix -s3alias,
//!   --ol-s3, .mrap, --x-s3"
//!   (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
//! - S3 keys: any UTF-8 up to 1024 bytes (S3 object key naming guide);
//!   cloudimg only writes `NAME.<ext>` with NAME an AMI name, so a key
//!   must be made of the AMI name characters.
//! - AWS regions: no published grammar \[U\]; every region code has the
//!   shape `us-east-1`, `us-gov-west-1`, `ap-southeast-2`.
//! - GCE images, instances, disks: "`[a-z]([-a-z0-9]*[a-z0-9])?`", 1-63
//!   characters (RFC 1035; the Compute Engine API's `name` field).
//! - GCP project ids: "must start with a lowercase letter and can have
//!   lowercase ASCII letters, digits or hyphens. Project IDs must be
//!   between 6 and 30 characters" (`gcloud projects create` reference);
//!   not ending in a hyphen (Resource Manager `Project` reference, as
//!   quoted by luci-go's `ValidateProjectID`). Legacy domain-scoped ids
//!   (`example.com:proj`) are refused \[U\].
//! - GCE zones: no published grammar \[U\]; every zone has the shape
//!   `us-central1-a`, `europe-west4-b`.
//! - Cloud Storage buckets: 3-63 characters of lowercase letters,
//!   digits, `-`, `_` and `.`, starting and ending with a letter or
//!   digit, no `..`, not an IP address, not starting with `goog` nor
//!   containing `google` (cloud.google.com/storage/docs/buckets#naming;
//!   seen through a summary, and cloudimg refuses dotted names over 63
//!   characters) \[U\]. Objects: 1-1024 bytes of UTF-8, no CR or LF,
//!   and `*`, `?`, `[`, `]`, `#` avoided as they are wildcards for the
//!   CLIs (storage/docs/objects#naming) \[U\]; cloudimg writes only
//!   `NAME.tar.gz`, NAME a GCE name.
//! - Azure (learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules):
//!   resource groups 1-90 of "underscores, hyphens, periods,
//!   parentheses, and letters or digits", not ending in a period;
//!   disks 1-80 and NICs 1-80 of "alphanumerics, underscores, periods,
//!   and hyphens. Start with alphanumeric. End with alphanumeric or
//!   underscore"; virtual networks the same in 2-64; Linux VMs 1-64,
//!   "Can't use: `\/""[]:|<>+=;,?*@&` ... Can't start with underscore.
//!   Can't end with period or hyphen"; storage accounts 3-24 "lowercase
//!   letters and numbers"; containers 3-63 "lowercase letters, numbers,
//!   and hyphens. Start with lowercase letter or number. Can't use
//!   consecutive hyphens"; blobs 1-1024 of any URL characters
//!   (cloudimg writes `NAME.vhd`). cloudimg refuses a leading `-`
//!   everywhere, and VM names other than letters, digits and `-`.

/// Why a value was refused: the rule it breaks.
pub type Rule = String;

fn check(ok: bool, rule: &str) -> Result<(), Rule> {
    if ok {
        Ok(())
    } else {
        Err(rule.to_string())
    }
}

fn lower_digit(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Four dot-separated decimal numbers: what S3 and GCS forbid as a name.
fn looks_like_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
}

/// An EC2 id: `prefix` then 8 or 17 lowercase hex digits.
fn ec2_id(s: &str, prefix: &str, what: &str) -> Result<(), Rule> {
    let ok = s
        .strip_prefix(prefix)
        .is_some_and(|h| (h.len() == 8 || h.len() == 17) && is_hex(h));
    check(
        ok,
        &format!("not {what} ({prefix} then 8 or 17 lowercase hex digits)"),
    )
}

/// An EC2 instance id (`i-1234567890abcdef0`).
pub fn aws_instance_id(s: &str) -> Result<(), Rule> {
    ec2_id(s, "i-", "an EC2 instance id")
}

/// An AMI id (`ami-1234567890abcdef0`).
pub fn aws_image_id(s: &str) -> Result<(), Rule> {
    ec2_id(s, "ami-", "an AMI id")
}

/// A VPC subnet id (`subnet-08fc749671b2d077c`, the CLI reference's
/// example).
pub fn aws_subnet_id(s: &str) -> Result<(), Rule> {
    ec2_id(s, "subnet-", "a VPC subnet id")
}

/// A security group id (`sg-0b0384b66d7d692f9`, the CLI reference's
/// example).
pub fn aws_security_group_id(s: &str) -> Result<(), Rule> {
    ec2_id(s, "sg-", "a security group id")
}

/// An EBS snapshot id (`snap-1234567890abcdef0`).
pub fn aws_snapshot_id(s: &str) -> Result<(), Rule> {
    ec2_id(s, "snap-", "an EBS snapshot id")
}

/// A VM Import snapshot task id (`import-snap-1234567890abcdef0`).
pub fn aws_import_task_id(s: &str) -> Result<(), Rule> {
    let ok = s
        .strip_prefix("import-snap-")
        .is_some_and(|h| (h.len() == 8 || h.len() == 17) && h.chars().all(lower_digit));
    check(
        ok,
        "not an import snapshot task id (import-snap- then 8 or 17 lowercase letters and digits)",
    )
}

/// The characters of an AMI name cloudimg uses (AWS's set without the
/// space).
fn ami_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "()[]./-'@_".contains(c)
}

/// An AMI name (also the instance's `Name` tag, the import task's
/// description and the S3 key's stem).
pub fn aws_image_name(s: &str) -> Result<(), Rule> {
    check(
        (3..=128).contains(&s.len()) && !s.starts_with('-') && s.chars().all(ami_char),
        "not an AMI name (3-128 letters, digits and ()[]./-'@_, not starting with '-')",
    )
}

/// An AWS region code (`us-east-1`, `us-gov-west-1`).
pub fn aws_region(s: &str) -> Result<(), Rule> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = s.len() <= 32
        && parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    check(ok, "not an AWS region code (like us-east-1)")
}

/// An S3 general purpose bucket name.
pub fn s3_bucket(s: &str) -> Result<(), Rule> {
    let ok = (3..=63).contains(&s.len())
        && s.chars().all(|c| lower_digit(c) || c == '.' || c == '-')
        && s.starts_with(lower_digit)
        && s.ends_with(lower_digit)
        && !s.contains("..")
        && !looks_like_ipv4(s)
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| s.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3"]
            .iter()
            .any(|p| s.ends_with(p));
    check(ok, "not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit; AWS's reserved prefixes and suffixes refused)")
}

/// An S3 object key as cloudimg writes it.
pub fn s3_key(s: &str) -> Result<(), Rule> {
    check(
        (1..=1024).contains(&s.len())
            && !s.starts_with(['-', '/'])
            && s.chars().all(ami_char),
        "not an S3 key cloudimg writes (1-1024 letters, digits and ()[]./-'@_, not starting with '-' or '/')",
    )
}

/// `s3://BUCKET/KEY`.
pub fn s3_uri(s: &str) -> Result<(), Rule> {
    let (bucket, key) = s
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| "not an s3://BUCKET/KEY URI".to_string())?;
    s3_bucket(bucket)?;
    s3_key(key)
}

/// A Compute Engine resource name (image, instance, disk): RFC 1035.
pub fn gce_name(s: &str) -> Result<(), Rule> {
    check(
        (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| lower_digit(c) || c == '-')
            && !s.ends_with('-'),
        "not a Compute Engine name ([a-z]([-a-z0-9]{0,61}[a-z0-9])?)",
    )
}

/// A label (GCP), tag (AWS, Azure) key: GCP's rule, the strictest of
/// the three ("Keys must start with a lowercase letter ... can contain
/// only lowercase letters, numeric characters, underscores, and dashes",
/// at most 63 characters: cloud.google.com/compute/docs/labeling-resources).
pub fn label_key(s: &str) -> Result<(), Rule> {
    check(
        (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| lower_digit(c) || c == '-' || c == '_'),
        "not a label key ([a-z][a-z0-9_-]{0,62})",
    )
}

/// A label or tag value: at most 63 lowercase letters, digits, `_` and
/// `-` (GCP's rule, as for [`label_key`]).
pub fn label_value(s: &str) -> Result<(), Rule> {
    check(
        s.len() <= 63 && s.chars().all(|c| lower_digit(c) || c == '-' || c == '_'),
        "not a label value ([a-z0-9_-]{0,63})",
    )
}

/// Check `labels` (`KEY=VALUE` pairs).
pub fn labels(labels: &[(String, String)]) -> crate::error::Result<()> {
    for (k, v) in labels {
        label_key(k).and_then(|()| label_value(v)).map_err(|rule| {
            crate::error::Error::new(
                crate::error::ErrorKind::InvalidInput,
                format!("label {k}={v} is {rule}"),
            )
        })?;
    }
    Ok(())
}

/// A GCP project id.
pub fn gcp_project(s: &str) -> Result<(), Rule> {
    check(
        (6..=30).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| lower_digit(c) || c == '-')
            && !s.ends_with('-'),
        "not a GCP project id (6-30 lowercase letters, digits and '-', starting with a letter, not ending with '-')",
    )
}

/// A Compute Engine zone (`us-central1-a`).
pub fn gcp_zone(s: &str) -> Result<(), Rule> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = s.len() <= 63
        && parts.len() >= 3
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts.iter().all(|p| !p.is_empty())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(lower_digit))
        && parts[parts.len() - 2].ends_with(|c: char| c.is_ascii_digit())
        && parts[parts.len() - 1].len() == 1
        && parts[parts.len() - 1]
            .chars()
            .all(|c| c.is_ascii_lowercase());
    check(ok, "not a Compute Engine zone (like us-central1-a)")
}

/// A Cloud Storage bucket name.
pub fn gcs_bucket(s: &str) -> Result<(), Rule> {
    let ok = (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| lower_digit(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(lower_digit)
        && s.ends_with(lower_digit)
        && !s.contains("..")
        && !looks_like_ipv4(s)
        && !s.starts_with("goog")
        && !s.contains("google");
    check(ok, "not a Cloud Storage bucket name (3-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit; no \"goog\" prefix, no \"google\")")
}

/// A Cloud Storage object name as cloudimg writes it (`NAME.tar.gz`).
pub fn gcs_object(s: &str) -> Result<(), Rule> {
    check(
        (1..=1024).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)),
        "not a Cloud Storage object cloudimg writes (1-1024 letters, digits and ._-/, starting with a letter or digit; no wildcards)",
    )
}

/// `gs://BUCKET/OBJECT`.
pub fn gcs_uri(s: &str) -> Result<(), Rule> {
    let (bucket, object) = s
        .strip_prefix("gs://")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| "not a gs://BUCKET/OBJECT URI".to_string())?;
    gcs_bucket(bucket)?;
    gcs_object(object)
}

/// An Azure resource group name.
pub fn azure_resource_group(s: &str) -> Result<(), Rule> {
    check(
        (1..=90).contains(&s.chars().count())
            && !s.starts_with('-')
            && !s.ends_with('.')
            && s.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c)),
        "not an Azure resource group (1-90 letters, digits and -_.(), not starting with '-' nor ending with '.')",
    )
}

/// Alphanumerics, `_`, `.`, `-`; starting alphanumeric, ending
/// alphanumeric or `_`; `len` characters.
fn azure_network_style(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
}

/// An Azure managed disk name.
pub fn azure_disk(s: &str) -> Result<(), Rule> {
    check(azure_network_style(s, 1..=80), "not an Azure disk name (1-80 letters, digits and _.-, starting with a letter or digit, ending with a letter, digit or '_')")
}

/// An Azure network interface name.
pub fn azure_nic(s: &str) -> Result<(), Rule> {
    check(azure_network_style(s, 1..=80), "not an Azure NIC name (1-80 letters, digits and _.-, starting with a letter or digit, ending with a letter, digit or '_')")
}

/// An Azure virtual network name.
pub fn azure_vnet(s: &str) -> Result<(), Rule> {
    check(azure_network_style(s, 2..=64), "not an Azure virtual network name (2-64 letters, digits and _.-, starting with a letter or digit, ending with a letter, digit or '_')")
}

/// An Azure (Linux) VM name as cloudimg uses it.
pub fn azure_vm(s: &str) -> Result<(), Rule> {
    check(
        (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "not an Azure VM name (1-64 letters, digits and '-', starting with a letter, not ending with '-')",
    )
}

/// An Azure storage account name.
pub fn azure_storage_account(s: &str) -> Result<(), Rule> {
    check(
        (3..=24).contains(&s.len()) && s.chars().all(lower_digit),
        "not an Azure storage account (3-24 lowercase letters and digits)",
    )
}

/// An Azure blob container name.
pub fn azure_container(s: &str) -> Result<(), Rule> {
    check(
        (3..=63).contains(&s.len())
            && s.chars().all(|c| lower_digit(c) || c == '-')
            && s.starts_with(lower_digit)
            && s.ends_with(lower_digit)
            && !s.contains("--"),
        "not an Azure container (3-63 lowercase letters, digits and single '-', starting and ending with a letter or digit)",
    )
}

/// An Azure blob name as cloudimg writes it (`NAME.vhd`).
pub fn azure_blob(s: &str) -> Result<(), Rule> {
    check(
        (1..=1024).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "not an Azure blob cloudimg writes (1-1024 letters, digits and ._-, starting with a letter or digit)",
    )
}

/// An EC2 instance type (`t3.micro`, `m5d.2xlarge`, `u-6tb1.metal`):
/// family, `.`, size, as every entry of the EC2 instance types list \[U\].
pub fn aws_instance_type(s: &str) -> Result<(), Rule> {
    let ok = s.len() <= 64
        && s.split_once('.').is_some_and(|(family, size)| {
            family.starts_with(|c: char| c.is_ascii_lowercase())
                && family.chars().all(|c| lower_digit(c) || c == '-')
                && !size.is_empty()
                && size.chars().all(|c| lower_digit(c) || c == '-' || c == '.')
        });
    check(ok, "not an EC2 instance type (like t3.micro)")
}

/// A Compute Engine machine type (`e2-small`, `n2-custom-4-8192`): a
/// Compute Engine name.
pub fn gce_machine_type(s: &str) -> Result<(), Rule> {
    gce_name(s).map_err(|_| "not a Compute Engine machine type (like e2-small)".to_string())
}

/// A run id (`20261205-181500-01234`, or a test's name).
pub fn run_id(s: &str) -> Result<(), Rule> {
    check(
        (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "not a run id (1-64 letters, digits and ._-, starting with a letter or digit)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the issue's hostile journals held, and what every check
    /// must refuse whatever the field.
    const HOSTILE: &[&str] = &[
        "*",
        "?",
        "-x",
        "--dry-run",
        " i-1234567890abcdef0",
        "i-1234567890abcdef0 ",
        "a\nb",
        "a\tb",
        "",
        "a*",
        "x[1]*",
    ];

    type Check = fn(&str) -> Result<(), Rule>;

    const ALL: &[(&str, Check, &str)] = &[
        ("instance", aws_instance_id, "i-1234567890abcdef0"),
        ("ami", aws_image_id, "ami-1a2b3c4d"),
        ("snap", aws_snapshot_id, "snap-1234567890abcdef0"),
        ("task", aws_import_task_id, "import-snap-fh4y4ryo"),
        ("ami name", aws_image_name, "capos-20261205(v1.0)"),
        ("region", aws_region, "us-gov-west-1"),
        ("s3 bucket", s3_bucket, "capos.images-1"),
        ("s3 key", s3_key, "capos-test.vmdk"),
        ("s3 uri", s3_uri, "s3://bkt/capos-test.raw"),
        ("gce", gce_name, "capos-test"),
        ("project", gcp_project, "capos-proj"),
        ("zone", gcp_zone, "northamerica-northeast1-a"),
        ("gcs bucket", gcs_bucket, "capos_images.eu"),
        ("gcs object", gcs_object, "capos-test.tar.gz"),
        ("gcs uri", gcs_uri, "gs://bkt/capos-test.tar.gz"),
        ("rg", azure_resource_group, "capos-rg.(test)"),
        ("disk", azure_disk, "capos-osdisk"),
        ("nic", azure_nic, "capos-nic"),
        ("vnet", azure_vnet, "capos-vnet"),
        ("vm", azure_vm, "capos-test"),
        ("account", azure_storage_account, "caposimages"),
        ("container", azure_container, "vhds-1"),
        ("blob", azure_blob, "capos-test.vhd"),
        ("run id", run_id, "20261205-181500-01234"),
        ("instance type", aws_instance_type, "u-6tb1.metal"),
        ("machine type", gce_machine_type, "n2-custom-4-8192"),
    ];

    #[test]
    fn every_check_refuses_wildcards_options_and_blanks() {
        for (what, f, good) in ALL {
            assert_eq!(f(good), Ok(()), "{what}: {good}");
            for bad in HOSTILE {
                assert!(f(bad).is_err(), "{what} took {bad:?}");
            }
            // The valid value with anything hostile around it.
            for bad in [
                format!("{good}*"),
                format!("-{good}"),
                format!("{good} "),
                format!("{good}\0"),
            ] {
                assert!(f(&bad).is_err(), "{what} took {bad:?}");
            }
        }
    }

    #[test]
    fn aws_ids_are_prefix_and_8_or_17_hex_digits() {
        assert!(aws_instance_id("i-1a2b3c4d").is_ok());
        assert!(aws_instance_id("i-1a2b3c4").is_err());
        assert!(aws_instance_id("i-1234567890abcdef").is_err());
        assert!(aws_instance_id("i-1234567890ABCDEF0").is_err());
        assert!(aws_instance_id("i-123456789gabcdef0").is_err());
        assert!(aws_instance_id("ami-1234567890abcdef0").is_err());
        assert!(aws_snapshot_id("snap-0").is_err());
        assert_eq!(
            aws_image_id("*").unwrap_err(),
            "not an AMI id (ami- then 8 or 17 lowercase hex digits)"
        );
    }

    #[test]
    fn bucket_rules_follow_the_providers() {
        for bad in [
            "ab",
            "Bucket",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "sthree-x",
            "x-s3alias",
            "-abc",
            "abc-",
            &"a".repeat(64),
        ] {
            assert!(s3_bucket(bad).is_err(), "{bad}");
        }
        assert!(s3_bucket(&"a".repeat(63)).is_ok());
        assert!(gcs_bucket("goog-images").is_err());
        assert!(gcs_bucket("my-google-bucket").is_err());
        assert!(gcs_bucket("a_b").is_ok());
        assert!(s3_bucket("a_b").is_err());
    }

    #[test]
    fn names_have_their_lengths() {
        assert!(gce_name(&format!("a{}", "b".repeat(62))).is_ok());
        assert!(gce_name(&format!("a{}", "b".repeat(63))).is_err());
        assert!(gcp_project("proj").is_err(), "under 6");
        assert!(aws_image_name(&"a".repeat(129)).is_err());
        assert!(azure_storage_account(&"a".repeat(25)).is_err());
        assert!(azure_vm(&"a".repeat(65)).is_err());
        assert!(azure_vnet("a").is_err());
        assert!(azure_resource_group(&"r".repeat(91)).is_err());
        assert!(azure_resource_group("rg.").is_err());
        assert!(azure_container("a--b").is_err());
        assert!(s3_key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn uris_check_both_halves() {
        assert!(s3_uri("s3://bkt/*").is_err());
        assert!(s3_uri("s3://*/k.raw").is_err());
        assert!(s3_uri("s3://bkt").is_err());
        assert!(gcs_uri("gs://bkt/*.tar.gz").is_err());
        assert!(gcs_uri("gs://bkt/-r").is_err());
        assert!(gcs_uri("s3://bkt/x").is_err());
    }
}
