"""The EC2 Query protocol, both ways, driven by botocore's own service
model so that what the real `aws` CLI sends and parses is what this side
reads and writes.

Requests: botocore's EC2Serializer (botocore/serialize.py) flattens the
input into form fields: a structure member is `Prefix.Name` where Name is
the member's `queryName`, else its `locationName` capitalised, else the
member name; a list is `Prefix.N` (1-based, always flattened for EC2).
`parse_request` reverses that into the dict boto3 would have been given.

Responses: botocore's EC2QueryParser (botocore/parsers.py) reads
`<OpResponse>` whose children are named by each member's `locationName`
(else the member name) and whose lists hold `<item>` elements (the list
member's locationName). `response_xml` writes that from a dict in the
output shape. Errors are `<Response><Errors><Error><Code>` as EC2 sends.
"""

import uuid
from xml.sax.saxutils import escape

import botocore.session

#: The EC2 API version botocore's model speaks (its metadata.apiVersion).
_MODEL = botocore.session.get_session().get_service_model("ec2")
XMLNS = "http://ec2.amazonaws.com/doc/%s/" % _MODEL.metadata["apiVersion"]


def operation(name):
    """botocore's OperationModel for Action `name` (KeyError if unknown)."""
    return _MODEL.operation_model(name)


# ------------------------------------------------------------- requests ----


def _query_name(member, name):
    ser = member.serialization
    if "queryName" in ser:
        return ser["queryName"]
    if "name" in ser:
        return ser["name"][0].upper() + ser["name"][1:]
    return name


def _has_prefix(params, prefix):
    dotted = prefix + "."
    return any(k == prefix or k.startswith(dotted) for k in params)


def _parse(shape, params, prefix):
    t = shape.type_name
    if t == "structure":
        out = {}
        for name, member in shape.members.items():
            key = _query_name(member, name)
            sub = prefix + "." + key if prefix else key
            if _has_prefix(params, sub):
                out[name] = _parse(member, params, sub)
        return out
    if t == "list":
        items, i = [], 1
        while _has_prefix(params, "%s.%d" % (prefix, i)):
            items.append(_parse(shape.member, params, "%s.%d" % (prefix, i)))
            i += 1
        return items
    value = params.get(prefix, "")
    if t == "boolean":
        return value == "true"
    if t in ("integer", "long"):
        return int(value)
    return value


def parse_request(op_name, params):
    """The input dict of `op_name` from the flat form `params`."""
    shape = operation(op_name).input_shape
    return _parse(shape, params, "") if shape is not None else {}


# ------------------------------------------------------------ responses ----


def _xml_value(shape, value):
    t = shape.type_name
    if t == "structure":
        return "".join(_xml_members(shape, value))
    if t == "list":
        tag = shape.member.serialization.get("name", "item")
        return "".join("<%s>%s</%s>" % (tag, _xml_value(shape.member, v), tag) for v in value)
    if t == "boolean":
        return "true" if value else "false"
    return escape(str(value))


def _xml_members(shape, data):
    for name, member in shape.members.items():
        if name in data and data[name] is not None:
            tag = member.serialization.get("name", name)
            yield "<%s>%s</%s>" % (tag, _xml_value(member, data[name]), tag)


def request_id():
    return str(uuid.uuid4())


def response_xml(op_name, data):
    """The XML body EC2 answers `op_name` with, from `data` (output shape)."""
    shape = operation(op_name).output_shape
    body = "".join(_xml_members(shape, data)) if shape is not None else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s">'
            "<requestId>%s</requestId>%s</%sResponse>"
            % (op_name, XMLNS, request_id(), body, op_name)).encode()


def error_xml(code, message):
    """The XML body of an EC2 error."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            "<Code>%s</Code><Message>%s</Message></Error></Errors>"
            "<RequestID>%s</RequestID></Response>"
            % (escape(code), escape(message), request_id())).encode()
