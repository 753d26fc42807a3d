//! The OVF descriptor: rendering the one cloudimg writes, and a minimal
//! parser for the facts the verifier checks.
//!
//! The envelope follows OVF 1.0 (DMTF DSP0243) as VMware writes it (open-vmdk
//! `templates/template-hw13-uefi.ovf`, `ova-compose.py`): `References` with
//! one `File`, a `DiskSection` with the capacity in bytes and the
//! stream-optimized VMDK format URI, a `NetworkSection`, and a
//! `VirtualSystem` with `OperatingSystemSection` (CIM id 102, "Other
//! 64-Bit", `vmw:osType="otherGuest64"`) and a `VirtualHardwareSection`:
//! `vmx-13`, 2 CPUs, 2048 MiB, a SATA (AHCI) controller (RASD type 20,
//! subtype `vmware.sata.ahci`, as ova-compose writes it) holding the disk,
//! one E1000 NIC on "VM Network", and `firmware=efi`. RASD elements are
//! in the alphabetical order of the CIM schema sequence. No serial port:
//! how to give one a backing in OVF that vSphere accepts was not
//! confirmed [U]. CIM OS id 102 = "Other 64-Bit" was recalled, not
//! checked against the CIM schema [U].
//!
//! The descriptor is read with `roxmltree`, an XML parser that resolves
//! namespaces: the OVF elements and attributes are found by the namespace
//! URI, whatever prefix an OVF's producer bound it to (cloudimg and VMware
//! write `ovf:` and a default namespace; Python's ElementTree writes
//! `ns0:`). Documents with a DTD are refused (roxmltree's default).

use super::VMDK_STREAM_OPTIMIZED_URI;

/// Virtual CPUs in the descriptor.
pub const CPUS: u32 = 2;
/// Memory in MiB in the descriptor.
pub const MEMORY_MIB: u32 = 2048;
/// The VMware virtual hardware version.
pub const HARDWARE_VERSION: &str = "vmx-13";

/// The descriptor for the OVA `name` whose disk member `vmdk_name` is
/// `vmdk_size` bytes and holds a disk of `capacity` bytes.
pub fn render(name: &str, vmdk_name: &str, vmdk_size: u64, capacity: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk_name}" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{VMDK_STREAM_OPTIMIZED_URI}"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="102" vmw:osType="otherGuest64">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>{HARDWARE_VERSION}</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{CPUS} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{CPUS}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{MEMORY_MIB}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{MEMORY_MIB}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:ElementName>SATA Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>E1000 ethernet adapter on "VM Network"</rasd:Description>
        <rasd:ElementName>Ethernet 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// The OVF 1.x envelope namespace (DSP0243 1.x; what cloudimg, VMware and
/// VirtualBox write).
pub const OVF_NAMESPACE_1: &str = "http://schemas.dmtf.org/ovf/envelope/1";
/// The OVF 2.x envelope namespace (DSP0243 2.0; its schema is
/// `envelope/2/dsp8023_2.0.1.xsd`, and VirtualBox's `ovfreader.cpp` reads
/// both as `OVF10_URI_string` / `OVF20_URI_string`).
pub const OVF_NAMESPACE_2: &str = "http://schemas.dmtf.org/ovf/envelope/2";

/// A `File` of `References`: its attributes as written (entities
/// decoded) and its byte offset in the descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// `ovf:href`.
    pub href: Option<String>,
    /// `ovf:id`.
    pub id: Option<String>,
    /// `ovf:size`.
    pub size: Option<String>,
    /// Offset of the element's `<`.
    pub offset: usize,
}

/// A `Disk` of a `DiskSection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRef {
    /// `ovf:capacity`.
    pub capacity: Option<String>,
    /// `ovf:capacityAllocationUnits`.
    pub capacity_units: Option<String>,
    /// `ovf:fileRef`.
    pub file_ref: Option<String>,
    /// `ovf:format`.
    pub format: Option<String>,
    /// Offset of the element's `<`.
    pub offset: usize,
}

/// The facts of an OVF descriptor the verifier checks, read with an XML
/// parser that resolves namespaces (`roxmltree`): elements and attributes
/// are matched by the OVF namespace URI, whatever prefix binds it
/// (`ovf:`, `ns0:`, or the default namespace). An attribute with no
/// namespace is read too when the qualified one is absent (older
/// producers write `href=`; the schema wants `ovf:href`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The OVF namespace of the root element.
    pub namespace: &'static str,
    /// The `File` elements of `References`, in order.
    pub files: Vec<FileRef>,
    /// The `Disk` elements of every `DiskSection`, in order.
    pub disks: Vec<DiskRef>,
}

/// A parse failure: message and byte offset in the descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Offset in the descriptor.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse an OVF descriptor: well-formed XML (no DTD) whose root is an
/// `Envelope` in the OVF 1.x or 2.x namespace.
pub fn parse(text: &str) -> Result<Envelope, ParseError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| ParseError {
        offset: byte_offset(text, e.pos()),
        message: format!("not well-formed XML: {e}"),
    })?;
    let root = doc.root_element();
    let name = root.tag_name();
    let namespace = match name.namespace() {
        Some(OVF_NAMESPACE_1) => OVF_NAMESPACE_1,
        Some(OVF_NAMESPACE_2) => OVF_NAMESPACE_2,
        _ => {
            return Err(ParseError {
                offset: root.range().start,
                message: format!(
                    "the root element is {}, not an OVF Envelope (namespace {OVF_NAMESPACE_1})",
                    describe(name)
                ),
            })
        }
    };
    if name.name() != "Envelope" {
        return Err(ParseError {
            offset: root.range().start,
            message: format!("the root element is {}, not Envelope", describe(name)),
        });
    }
    let attr = |n: roxmltree::Node, key: &str| {
        n.attribute((namespace, key))
            .or_else(|| n.attribute(key))
            .map(str::to_string)
    };
    let is = |n: &roxmltree::Node, local: &str| {
        n.is_element()
            && n.tag_name().namespace() == Some(namespace)
            && n.tag_name().name() == local
    };
    let files = root
        .children()
        .filter(|n| is(n, "References"))
        .flat_map(|r| r.children())
        .filter(|n| is(n, "File"))
        .map(|n| FileRef {
            href: attr(n, "href"),
            id: attr(n, "id"),
            size: attr(n, "size"),
            offset: n.range().start,
        })
        .collect();
    let disks = root
        .descendants()
        .filter(|n| is(n, "Disk") && n.parent().is_some_and(|p| is(&p, "DiskSection")))
        .map(|n| DiskRef {
            capacity: attr(n, "capacity"),
            capacity_units: attr(n, "capacityAllocationUnits"),
            file_ref: attr(n, "fileRef"),
            format: attr(n, "format"),
            offset: n.range().start,
        })
        .collect();
    Ok(Envelope {
        namespace,
        files,
        disks,
    })
}

/// The `ovf:href` of the first `File` in `References`, if the descriptor
/// parses: the disk member the reader and the verifier decode.
pub fn first_file_href(text: &str) -> Option<String> {
    parse(text).ok()?.files.into_iter().next()?.href
}

/// `{namespace}local`, or `local` (no namespace), for messages.
fn describe(name: roxmltree::ExpandedName) -> String {
    match name.namespace() {
        Some(ns) => format!("{{{ns}}}{}", name.name()),
        None => format!("{} (no namespace)", name.name()),
    }
}

/// The byte offset of a 1-based row and column (in characters).
fn byte_offset(text: &str, pos: roxmltree::TextPos) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(pos.row.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let col = text[line_start.min(text.len())..]
        .char_indices()
        .nth(pos.col.saturating_sub(1) as usize)
        .map_or(0, |(i, _)| i);
    (line_start + col).min(text.len())
}

/// Bytes per unit of an OVF `capacityAllocationUnits` value: `byte` or
/// `byte * 2^N` (DSP0243 programmatic units; other forms are not
/// accepted here).
pub fn allocation_units(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "byte" {
        return Some(1);
    }
    let exp = s.strip_prefix("byte")?.trim().strip_prefix('*')?.trim();
    let exp: u32 = exp.strip_prefix("2^")?.trim().parse().ok()?;
    1u64.checked_shl(exp).filter(|_| exp < 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_descriptor_parses() {
        let text = render("capos", "capos-disk1.vmdk", 12345, 64 << 20);
        let env = parse(&text).unwrap();
        assert_eq!(env.namespace, OVF_NAMESPACE_1);
        assert_eq!(
            env.files,
            vec![FileRef {
                href: Some("capos-disk1.vmdk".into()),
                id: Some("file1".into()),
                size: Some("12345".into()),
                offset: text.find("<File ").unwrap(),
            }]
        );
        let d = &env.disks[0];
        assert_eq!(d.capacity.as_deref(), Some("67108864"));
        assert_eq!(d.format.as_deref(), Some(VMDK_STREAM_OPTIMIZED_URI));
        assert_eq!(d.file_ref.as_deref(), Some("file1"));
        assert_eq!(d.offset, text.find("<Disk ").unwrap());
    }

    #[test]
    fn any_prefix_of_the_ovf_namespace_is_read() {
        for (open, close) in [
            (
                "<ns0:Envelope xmlns:ns0='http://schemas.dmtf.org/ovf/envelope/1'>",
                "</ns0:Envelope>",
            ),
            (
                "<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/2'>",
                "</Envelope>",
            ),
        ] {
            let p = if open.contains("ns0") { "ns0:" } else { "" };
            let attr = if open.contains("ns0") { "ns0:" } else { "" };
            let text = format!(
                "{open}<{p}References><{p}File {attr}href='a&amp;b.vmdk' {attr}id='f'/></{p}References>{close}"
            );
            let env = parse(&text).unwrap();
            assert_eq!(env.files[0].href.as_deref(), Some("a&b.vmdk"), "{text}");
            assert_eq!(env.files[0].id.as_deref(), Some("f"));
        }
    }

    #[test]
    fn malformed_or_foreign_xml_is_refused_with_offsets() {
        let e = parse("<a><b></a>").unwrap_err();
        assert!(e.message.starts_with("not well-formed XML: "), "{e:?}");
        assert_eq!(e.offset, 6);
        let e = parse("<!DOCTYPE x><a/>").unwrap_err();
        assert!(e.message.starts_with("not well-formed XML: "), "{e:?}");
        let e = parse("<?xml version='1.0'?>\n<Envelope><References/></Envelope>").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (
                22,
                "the root element is Envelope (no namespace), not an OVF Envelope (namespace http://schemas.dmtf.org/ovf/envelope/1)"
            )
        );
        let e = parse("<x:Envelope xmlns:x='http://example.com/ovf'/>").unwrap_err();
        assert_eq!(
            e.message,
            "the root element is {http://example.com/ovf}Envelope, not an OVF Envelope (namespace http://schemas.dmtf.org/ovf/envelope/1)"
        );
        let e = parse("<References xmlns='http://schemas.dmtf.org/ovf/envelope/1'/>").unwrap_err();
        assert_eq!(
            e.message,
            "the root element is {http://schemas.dmtf.org/ovf/envelope/1}References, not Envelope"
        );
    }

    #[test]
    fn allocation_units_parse() {
        assert_eq!(allocation_units("byte"), Some(1));
        assert_eq!(allocation_units("byte * 2^20"), Some(1 << 20));
        assert_eq!(allocation_units("byte*2^30"), Some(1 << 30));
        assert_eq!(allocation_units("byte * 2^64"), None);
        assert_eq!(allocation_units("MB"), None);
    }
}
