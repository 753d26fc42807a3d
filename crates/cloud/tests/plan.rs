//! `--plan`: the exact command lines, with the user's names filled in
//! and `<...>` for ids that exist only at run time.

mod common;

use std::path::Path;

use cloudimg_cloud::{plan, AwsFormat, BootMode, Target};
use cloudimg_disk::vocab::Firmware;

fn lines(t: &Target, artifact: &str) -> Vec<String> {
    plan(t, Path::new(artifact))
}

#[test]
fn gcp_plan_is_exact() {
    let want = [
        "# verify",
        "cloudimg verify target/cloud-image/disk.raw.tar.gz",
        "# preflight (version, account, project, zone)",
        "gcloud version --format=json",
        "gcloud config get-value account",
        "gcloud config get-value compute/zone",
        "gcloud config get-value project",
        "# upload",
        "gcloud storage cp target/cloud-image/disk.raw.tar.gz gs://bkt/capos-test.tar.gz --project=capos-proj",
        "# import",
        "gcloud compute images create capos-test --project=capos-proj --source-uri=gs://bkt/capos-test.tar.gz --guest-os-features=UEFI_COMPATIBLE --format=json",
        "# boot",
        "gcloud compute instances create capos-test --project=capos-proj --zone=us-central1-a --image=capos-test --machine-type=e2-small --no-address --format=json",
        "# read serial (repeated, --start=<next>)",
        "gcloud compute instances get-serial-port-output capos-test --project=capos-proj --zone=us-central1-a --port=1 --start=0 --format=json",
        "# teardown (instance and image deletions confirmed by describing)",
        "gcloud compute instances delete capos-test --project=capos-proj --zone=us-central1-a --quiet",
        "gcloud compute instances describe capos-test --project=capos-proj --zone=us-central1-a --format=json",
        "gcloud compute images delete capos-test --project=capos-proj --quiet",
        "gcloud compute images describe capos-test --project=capos-proj --format=json",
        "gcloud storage rm gs://bkt/capos-test.tar.gz --project=capos-proj",
    ];
    assert_eq!(
        lines(
            &common::gcp_target("capos-test"),
            "target/cloud-image/disk.raw.tar.gz"
        ),
        want
    );
}

#[test]
fn gcp_plan_with_gsutil_and_without_uefi() {
    let mut t = common::gcp_target("capos-bios");
    if let Target::Gcp(g) = &mut t {
        g.gsutil = true;
        g.firmware = Firmware::Bios;
        g.zone = "europe-west4-b".into();
    }
    let got = lines(&t, "out dir/disk.raw.tar.gz");
    assert_eq!(got[1], "cloudimg verify 'out dir/disk.raw.tar.gz'");
    assert_eq!(
        got[8],
        "gsutil cp 'out dir/disk.raw.tar.gz' gs://bkt/capos-bios.tar.gz"
    );
    assert_eq!(
        got[10],
        "gcloud compute images create capos-bios --project=capos-proj --source-uri=gs://bkt/capos-bios.tar.gz --format=json"
    );
    assert_eq!(
        got[12],
        "gcloud compute instances create capos-bios --project=capos-proj --zone=europe-west4-b --image=capos-bios --machine-type=e2-small --no-address --format=json"
    );
    assert_eq!(got.last().unwrap(), "gsutil rm gs://bkt/capos-bios.tar.gz");
}

#[test]
fn aws_plan_is_exact() {
    let t = common::aws_target("capos-test", AwsFormat::Vmdk, BootMode::UefiPreferred);
    let want = [
        "# verify",
        "cloudimg verify target/cloud-image/capos-aws.vmdk",
        "# preflight (version, identity)",
        "aws --version",
        "aws sts get-caller-identity --output json --region us-east-1",
        "# upload",
        "aws s3 cp target/cloud-image/capos-aws.vmdk s3://bkt/capos-test.vmdk --only-show-errors --region us-east-1",
        "# import (poll the task until completed)",
        r#"aws ec2 import-snapshot --description capos-test --disk-container '{"Description":"capos-test","Format":"VMDK","UserBucket":{"S3Bucket":"bkt","S3Key":"capos-test.vmdk"}}' --region us-east-1 --output json"#,
        "aws ec2 describe-import-snapshot-tasks --import-task-ids '<import-task-id>' --region us-east-1 --output json",
        "# register",
        r#"aws ec2 register-image --name capos-test --architecture x86_64 --virtualization-type hvm --root-device-name /dev/xvda --block-device-mappings '[{"DeviceName":"/dev/xvda","Ebs":{"DeleteOnTermination":true,"SnapshotId":"<snapshot-id>"}}]' --ena-support --boot-mode uefi-preferred --region us-east-1 --output json"#,
        "# boot (--latest console where the type's hypervisor is nitro)",
        "aws ec2 describe-instance-types --instance-types=t3.micro --region us-east-1 --output json",
        r#"aws ec2 run-instances --image-id '<image-id>' --instance-type t3.micro --count 1 '--client-token=<run-id-name>' --tag-specifications '[{"ResourceType":"instance","Tags":[{"Key":"Name","Value":"capos-test"}]}]' --region us-east-1 --output json"#,
        "# read console (repeated; a NotFound retried while the instance propagates)",
        "aws ec2 get-console-output --instance-id '<instance-id>' --latest --region us-east-1 --output json",
        "# teardown (each deletion confirmed by describing)",
        "aws ec2 terminate-instances '--instance-ids=<instance-id>' --region us-east-1 --output json",
        "aws ec2 describe-instances '--instance-ids=<instance-id>' --region us-east-1 --output json",
        "aws ec2 deregister-image '--image-id=<image-id>' --region us-east-1",
        "aws ec2 describe-images '--image-ids=<image-id>' --region us-east-1 --output json",
        "aws ec2 delete-snapshot '--snapshot-id=<snapshot-id>' --region us-east-1",
        "aws ec2 describe-snapshots '--snapshot-ids=<snapshot-id>' --region us-east-1 --output json",
        "aws s3 rm s3://bkt/capos-test.vmdk --region us-east-1",
    ];
    assert_eq!(lines(&t, "target/cloud-image/capos-aws.vmdk"), want);
}

#[test]
fn aws_plan_raw_legacy_bios_without_region() {
    let mut t = common::aws_target("capos-raw", AwsFormat::Raw, BootMode::LegacyBios);
    if let Target::Aws(a) = &mut t {
        a.region = None;
    }
    let got = lines(&t, "capos-aws.raw");
    assert_eq!(
        got[6],
        "aws s3 cp capos-aws.raw s3://bkt/capos-raw.raw --only-show-errors"
    );
    assert_eq!(
        got[8],
        r#"aws ec2 import-snapshot --description capos-raw --disk-container '{"Description":"capos-raw","Format":"RAW","UserBucket":{"S3Bucket":"bkt","S3Key":"capos-raw.raw"}}' --output json"#
    );
    assert!(
        got[11].ends_with("--ena-support --boot-mode legacy-bios --output json"),
        "{}",
        got[11]
    );
    assert!(got.iter().all(|l| !l.contains("--region")));
}

#[test]
fn aws_vhd_plan_declares_vhd() {
    let t = common::aws_target("capos-vhd", AwsFormat::Vhd, BootMode::Uefi);
    let got = lines(&t, "capos-aws.vhd");
    assert!(
        got[8]
            .contains(r#""Format":"VHD","UserBucket":{"S3Bucket":"bkt","S3Key":"capos-vhd.vhd"}"#),
        "{}",
        got[8]
    );
    assert!(got[11].contains("--boot-mode uefi --region"), "{}", got[11]);
}

#[test]
fn azure_plan_is_exact() {
    let t = common::azure_target("capos-test", Firmware::Bios);
    let want = [
        "# verify",
        "cloudimg verify cloud/capos-azure.vhd",
        "# preflight (version, identity, location, storage account id)",
        "az version --output json",
        "az account show --output json",
        "az group show --name capos-rg --output json",
        "az storage account show --name caposimages --output json",
        "# upload (page blob)",
        "az storage blob upload --account-name caposimages --container-name vhds --name capos-test.vhd --file cloud/capos-azure.vhd --type page --overwrite --auth-mode login --output json",
        "# import (managed disk from the blob)",
        "az disk create --resource-group capos-rg --name capos-test-osdisk --location westeurope --source https://caposimages.blob.core.windows.net/vhds/capos-test.vhd --source-storage-account-id '<storage account id>' --os-type Linux --hyper-v-generation V1 --output json",
        "# network",
        "az network vnet create --resource-group capos-rg --name capos-test-vnet --location westeurope --address-prefixes 10.0.0.0/16 --subnet-name default --subnet-prefixes 10.0.0.0/24 --output json",
        "az network nic create --resource-group capos-rg --name capos-test-nic --location westeurope --vnet-name capos-test-vnet --subnet default --output json",
        "# boot (OS disk attached)",
        "az vm create --resource-group capos-rg --name capos-test --location westeurope --attach-os-disk capos-test-osdisk --os-type Linux --size Standard_B1s --nics capos-test-nic --boot-diagnostics-storage caposimages --output json",
        "# read serial (repeated; \"Please enable boot diagnostics.\" means not yet)",
        "az vm boot-diagnostics get-boot-log-uris --resource-group capos-rg --name capos-test --output json",
        "az storage blob download --blob-url '<serialConsoleLogBlobUri>' --file '<evidence/boot-log.download>' --auth-mode login --output none",
        "# teardown",
        "az vm delete --resource-group capos-rg --name capos-test --yes",
        "az network nic delete --resource-group capos-rg --name capos-test-nic",
        "az network vnet delete --resource-group capos-rg --name capos-test-vnet",
        "az disk delete --resource-group capos-rg --name capos-test-osdisk --yes",
        "az storage blob delete --account-name caposimages --container-name vhds --name capos-test.vhd --auth-mode login",
    ];
    assert_eq!(lines(&t, "cloud/capos-azure.vhd"), want);
}
