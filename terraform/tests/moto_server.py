"""Start moto's server with the few fixes the Terraform module needs from it.

Usage: python moto_server.py [moto_server options], e.g. ``-H 127.0.0.1 -p 5000``.

moto (5.2.x) falls short of RDS and EC2 in ways that break an apply, or make a
second plan show changes that real AWS would not. Each patch below fixes one:

1. Every DB instance gets the same hard-coded ``dbi_resource_id``, and a read
   replica is a copy of its source. The AWS provider 5.x reads an instance back
   by that id, so with a primary and a replica it fails with "couldn't find
   resource". Each instance, replica included, gets a unique id here.
2. The replica copy shares the source's mutable lists (log exports, security
   groups, tags), and keeps settings RDS does not copy to a replica (Multi-AZ,
   Performance Insights) when the request leaves them out. The replica gets its
   own lists and RDS's defaults for those settings.
3. Performance Insights settings are accepted but not stored nor returned.
4. Parameters set with ModifyDBParameterGroup come back without ``Source``;
   RDS says ``user``, and the provider ignores parameters without one.
5. A security group rule that references another group loses its description.

It also has moto load the AWS-managed IAM policies: the module attaches
AmazonRDSEnhancedMonitoringRole. Only test tooling: nothing here is part of the
Terraform module.
"""

from __future__ import annotations

import os
import secrets
import string
import sys
from typing import Any

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

# The setting above must come before moto is imported.
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.rds import models
from moto.server import main

_ALPHABET = string.ascii_uppercase + string.digits
# Request names (EnablePerformanceInsights...) as moto passes them on.
_PERFORMANCE_INSIGHTS = {
    "enable_performance_insights": False,
    "performance_insights_kms_key_id": None,
    "performance_insights_retention_period": None,
}
_NOT_COPIED_TO_REPLICA = {"multi_az": False, **_PERFORMANCE_INSIGHTS}


def _new_dbi_resource_id() -> str:
    # The shape of a real one: "db-" and 26 upper-case letters and digits.
    return "db-" + "".join(secrets.choice(_ALPHABET) for _ in range(26))


_original_init = models.DBInstance.__init__
_original_create_replica = models.RDSBackend.create_db_instance_read_replica
_original_update_parameters = models.DBParameterGroup.update_parameters


def _init(self: models.DBInstance, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.dbi_resource_id = _new_dbi_resource_id()  # 1
    for attribute, default in _PERFORMANCE_INSIGHTS.items():  # 3 (modify already stores them)
        value = kwargs.get(attribute)
        setattr(self, attribute, default if value is None else value)


def _create_replica(self: models.RDSBackend, db_kwargs: dict[str, Any]) -> models.DBInstance:
    replica = _original_create_replica(self, db_kwargs)
    replica.dbi_resource_id = _new_dbi_resource_id()  # 1
    for attribute in ("enabled_cloudwatch_logs_exports", "vpc_security_group_ids", "tags"):  # 2
        value = getattr(replica, attribute, None)
        if isinstance(value, list):
            setattr(replica, attribute, list(value))
    for attribute, default in _NOT_COPIED_TO_REPLICA.items():  # 2
        if db_kwargs.get(attribute) is None:
            setattr(replica, attribute, default)
    return replica


def _update_parameters(self: models.DBParameterGroup, new_parameters: Any) -> None:
    _original_update_parameters(self, [{**p, "Source": "user"} for p in new_parameters])  # 4


def _performance_insights_enabled(self: models.DBInstance) -> bool:
    # The response calls it PerformanceInsightsEnabled.
    return bool(getattr(self, "enable_performance_insights", False))  # 3


def _rule_description(self: SecurityGroupRule) -> str | None:
    return self.ip_range.get("Description") or (self.source_group or {}).get("Description")  # 5


models.DBInstance.__init__ = _init  # type: ignore[method-assign]
models.RDSBackend.create_db_instance_read_replica = _create_replica  # type: ignore[method-assign]
models.DBInstance.performance_insights_enabled = property(_performance_insights_enabled)  # type: ignore[attr-defined]
models.DBParameterGroup.update_parameters = _update_parameters  # type: ignore[method-assign]
SecurityGroupRule.description = property(_rule_description)  # type: ignore[assignment,method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
