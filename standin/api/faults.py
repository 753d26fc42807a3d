"""Faults the local API endpoints inject, from a comma-separated spec
(env CLOUDIMG_API_FAULTS at start, or POST /_standin/faults later):

    transient=OP[:N]          OP answers HTTP 500 (EC2 InternalError; GCP
                              backendError) N times (default 1)
    unavailable=OP[:N]        OP answers HTTP 503 (EC2 Unavailable; GCP
                              503 backendError) N times
    throttle=OP[:N]           OP answers the provider's throttling error
                              (EC2 RequestLimitExceeded, GCP 403
                              rateLimitExceeded "Rate Limit Exceeded") N
                              times
    notfound-after-run=N      for N calls naming a new instance after its
                              creation, answer NotFound (EC2 eventual
                              consistency; the instance does run)
    notfound-after-terminate=N   the same for N calls after terminate
    shutting-down=N           after terminate the instance stays
                              `shutting-down` (QEMU still running) for N
                              describes before it is terminated
    visible-after-delete=N    GCP: a deleted instance (STOPPING) or image
                              (DELETING) is still described by the next N
                              gets (leftovers list it until then)
    import-fail               the import (EC2 import task, GCP images
                              insert) fails with the provider's message
    no-landmark               instances boot with their serial going nowhere
    no-external-ip            GCP: an organization policy forbids external
                              IP addresses (instances.insert with an
                              access config fails)
    quota=OP[:N]              GCP: OP (instances.insert) is refused by the
                              regional CPU quota: 403 quotaExceeded,
                              "Quota 'CPUS' exceeded.  Limit: 0.0 in
                              region R." N times (default 1)
    permission=OP[:N]         GCP: OP is refused for a missing IAM
                              permission: 403 forbidden, "Required
                              'compute.images.create' permission for
                              'projects/P'" N times

AWS only (our EC2 endpoint; OP is the EC2 Action):

    quota=OP                  OP answers VcpuLimitExceeded (400), every time
    permission=OP             OP answers UnauthorizedOperation (403), every
                              time
    lost-response=OP[:N]      OP is done, then answers 500 InternalError (N
                              times): the CLI's retry must carry the same
                              ClientToken to get the same answer
    no-vmimport               ImportSnapshot answers InvalidParameter: the
                              service role vmimport does not exist
    notfound-after-register=N the next N calls naming a new AMI answer
                              InvalidAMIID.NotFound (eventual consistency)
    no-default-vpc            RunInstances without SubnetId answers
                              VPCIdNotSpecified (the account has no
                              default VPC)
    notfound-on-terminate=N   the first N TerminateInstances answer
                              InvalidInstanceID.NotFound and do nothing:
                              the instance goes on running

OP is the API's operation name (EC2 Action such as RunInstances; GCP
method such as instances.insert). The real CLIs retry 5xx and throttling
themselves (botocore's legacy mode: 5 attempts; gcloud: a few), so N must
exceed that for a fault to reach cloudimg.

GCP Cloud Storage: `transient=` and `unavailable=` also take
storage.objects.insert (an upload) and storage.objects.delete, answered
by the emulator's front of fake-gcs-server for gcloud and gsutil alike.
"""

import threading


class Faults:
    """A parsed fault spec with its countdowns; thread-safe."""

    def __init__(self, spec=""):
        self._lock = threading.Lock()
        self.set(spec)

    def set(self, spec):
        """Replace the spec (and reset every countdown)."""
        items = {}
        for item in (spec or "").replace("\n", ",").split(","):
            item = item.strip()
            if item:
                k, _, v = item.partition("=")
                items.setdefault(k, []).append(v)
        with self._lock:
            self._items = items
            self._used = {}

    def flag(self, kind):
        """True when `kind` (e.g. import-fail, no-landmark) is set."""
        return kind in self._items

    def number(self, kind, default=0):
        """The N of `kind=N`, else `default`."""
        vals = self._items.get(kind)
        return int(vals[-1]) if vals and vals[-1] else default

    def ops(self, kind):
        """The OPs named by every `kind=OP[:N]` (for faults that always
        fire, such as permission=OP)."""
        return [v.partition(":")[0] for v in self._items.get(kind, [])]

    def countdown(self, kind):
        """True for the first N calls when `kind=N` is set."""
        n = self.number(kind)
        with self._lock:
            used = self._used.get((kind, None), 0)
            if used < n:
                self._used[(kind, None)] = used + 1
                return True
        return False

    def due(self, kind, op):
        """True when `kind=OP[:N]` should fire for `op` now (counts down)."""
        for v in self._items.get(kind, []):
            name, _, n = v.partition(":")
            if name != op:
                continue
            with self._lock:
                used = self._used.get((kind, op), 0)
                if used < (int(n) if n else 1):
                    self._used[(kind, op)] = used + 1
                    return True
        return False
