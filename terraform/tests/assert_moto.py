"""Check, through the AWS API (moto's), what `terraform apply` of tests/moto built.

Usage:
    python assert_moto.py applied   ENDPOINT OUTPUTS_JSON STATE_FILE   # after apply
    python assert_moto.py destroyed ENDPOINT                           # after destroy

OUTPUTS_JSON is the file written by `terraform output -json` in tests/moto.
Prints one line per check and exits 1 at the end if any failed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
CA = "rds-ca-rsa2048-g1"
URL_QUERY = "sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem"
_failures: list[str] = []
_passes = 0


def check(condition: bool, what: str) -> None:
    global _passes
    if condition:
        _passes += 1
        print(f"  ok    {what}")
    else:
        _failures.append(what)
        print(f"  FAIL  {what}")


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="moto-fake-access-key",
        aws_secret_access_key="moto-fake-secret-key",  # noqa: S106 (moto accepts any key)
    )


def assert_applied(endpoint: str, outputs_path: str, state_path: str) -> None:
    with open(outputs_path, encoding="utf-8") as f:
        outputs = {name: o["value"] for name, o in json.load(f).items()}
    db = outputs["db"]
    rds = client("rds", endpoint)
    instances = {i["DBInstanceIdentifier"]: i for i in rds.describe_db_instances()["DBInstances"]}

    primary = instances.get("gists-primary")
    check(primary is not None, "the primary gists-primary exists")
    if primary is None:
        return
    primary_sgs = sorted(g["VpcSecurityGroupId"] for g in primary["VpcSecurityGroups"])
    primary_pg = [g["DBParameterGroupName"] for g in primary["DBParameterGroups"]]
    key = db["kms_key_arn"]

    check(primary["DBInstanceClass"] == "db.t3.medium", "primary class is db.t3.medium")
    check(primary["StorageEncrypted"] and primary["KmsKeyId"] == key, "primary encrypted with the module's key")
    check(primary["PubliclyAccessible"] is False, "primary not publicly accessible")
    check(primary["BackupRetentionPeriod"] >= 1, "primary has automated backups")
    check(primary["IAMDatabaseAuthenticationEnabled"] is True, "primary has IAM database authentication")
    check(primary["MonitoringInterval"] > 0, "primary has Enhanced Monitoring")
    check(primary.get("PerformanceInsightsKMSKeyId") == key, "primary's Performance Insights encrypted with the key")
    check(primary["CopyTagsToSnapshot"] is True, "primary copies tags to snapshots")
    check(primary_sgs == [db["security_group_id"]], "primary in the module's security group only")
    check(primary_pg == [db["parameter_group_name"]], "primary uses the module's parameter group")
    check(primary.get("CACertificateIdentifier") == CA, f"primary's certificate authority pinned to {CA}")

    replica_ids = db["replica_identifiers"]
    check(replica_ids == ["gists-replica1", "gists-replica2"], f"two replicas named in alias order: {replica_ids}")
    zones = set()
    for rid in replica_ids:
        replica = instances.get(rid)
        check(replica is not None, f"{rid} exists")
        if replica is None:
            continue
        zones.add(replica["AvailabilityZone"])
        source = replica.get("ReadReplicaSourceDBInstanceIdentifier")
        check(source == "gists-primary", f"{rid} replicates gists-primary")
        check(replica["DBInstanceClass"] == primary["DBInstanceClass"], f"{rid} has the primary's class")
        check(
            sorted(g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]) == primary_sgs,
            f"{rid} has the primary's security groups",
        )
        check(
            [g["DBParameterGroupName"] for g in replica["DBParameterGroups"]] == primary_pg,
            f"{rid} has the primary's parameter group",
        )
        check(replica["StorageEncrypted"] and replica["KmsKeyId"] == key, f"{rid} encrypted with the primary's key")
        check(replica["PubliclyAccessible"] is False, f"{rid} not publicly accessible")
        check(replica["MonitoringInterval"] > 0, f"{rid} has Enhanced Monitoring")
        check(replica.get("CACertificateIdentifier") == CA, f"{rid}'s certificate authority pinned to {CA}")
    check(
        len(zones) == len(replica_ids) and primary["AvailabilityZone"] not in zones,
        f"replicas spread over zones other than the primary's: {sorted(zones)}",
    )
    check(
        set(instances["gists-primary"].get("ReadReplicaDBInstanceIdentifiers", [])) == set(replica_ids),
        "the primary lists exactly these replicas",
    )

    ec2 = client("ec2", endpoint)
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [db["security_group_id"]]}])[
        "SecurityGroupRules"
    ]
    ingress = [r for r in rules if not r["IsEgress"]]
    check(all(r["FromPort"] == 5432 and r["ToPort"] == 5432 for r in ingress), "ingress only on 5432")
    check(
        {r.get("ReferencedGroupInfo", {}).get("GroupId") for r in ingress if "ReferencedGroupInfo" in r}
        == {outputs["app_security_group_id"]},
        "ingress from the app's security group",
    )
    check({r.get("CidrIpv4") for r in ingress if "CidrIpv4" in r} == {"10.42.200.0/24"}, "ingress from the given CIDR")
    check(not [r for r in rules if r["IsEgress"]], "no egress rule")

    alarms = {a["AlarmName"]: a for a in client("cloudwatch", endpoint).describe_alarms()["MetricAlarms"]}
    for rid in replica_ids:
        alarm = alarms.get(f"{rid}-replica-lag")
        check(alarm is not None, f"lag alarm for {rid} exists")
        if alarm is None:
            continue
        dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        check(
            alarm["MetricName"] == "ReplicaLag"
            and alarm["Namespace"] == "AWS/RDS"
            and dims == {"DBInstanceIdentifier": rid}
            and alarm["Threshold"] == 5,
            f"lag alarm for {rid} watches its ReplicaLag at 5 seconds",
        )
    check("gists-primary-cpu" in alarms, "CPU alarm on the primary exists")
    for instance in ["gists-primary", *replica_ids]:
        alarm = alarms.get(f"{instance}-free-storage")
        check(
            alarm is not None and alarm["MetricName"] == "FreeStorageSpace" and alarm["Threshold"] == 5 * 1024**3,
            f"free storage alarm on {instance} below 5 GiB",
        )
    slot = alarms.get("gists-primary-replication-slot-lag")
    check(
        slot is not None and slot["MetricName"] == "OldestReplicationSlotLag" and slot["Threshold"] == 1024**3,
        "OldestReplicationSlotLag alarm on the primary above 1 GiB",
    )
    check(
        all(a["AlarmActions"] == [outputs["alerts_topic_arn"]] for a in alarms.values()),
        "every alarm notifies the SNS topic of alarm_actions",
    )

    subscriptions = client("rds", endpoint).describe_event_subscriptions()["EventSubscriptionsList"]
    check(
        [
            (s["SnsTopicArn"], s["SourceType"], sorted(s["SourceIdsList"]), sorted(s["EventCategoriesList"]))
            for s in subscriptions
        ]
        == [
            (
                outputs["alerts_topic_arn"],
                "db-instance",
                sorted(["gists-primary", *replica_ids]),
                ["availability", "failover", "failure", "read replica"],
            )
        ],
        "one RDS event subscription: the SNS topic told of every instance's availability, failover, failure, replication",
    )

    urls = db["database_replica_urls"].split(",")
    check(
        len(urls) == 2 and all(u.startswith("postgres://") and "@" not in u for u in urls),
        "DATABASE_REPLICA_URLS: two URLs, no credentials",
    )
    check("@" not in db["database_url"], "DATABASE_URL without credentials")
    check(
        all(u.endswith(f"/gists?{URL_QUERY}") for u in [db["database_url"], *urls]),
        f"every URL asks for {URL_QUERY}",
    )

    roles = client("iam", endpoint).list_roles()["Roles"]
    trust = [r["AssumeRolePolicyDocument"] for r in roles if r["RoleName"].startswith("gists-rds-monitoring-")]
    conditions = [statement.get("Condition", {}) for t in trust for statement in t["Statement"]]
    check(
        len(conditions) == 1
        and conditions[0].get("StringEquals") == {"aws:SourceAccount": ACCOUNT}
        and "aws:SourceArn" in conditions[0].get("ArnLike", {}),
        "the monitoring role trusts RDS for this account's instances only",
    )

    secret = client("secretsmanager", endpoint).get_secret_value(SecretId=db["master_secret_arn"])
    value = json.loads(secret["SecretString"])
    check(
        value["username"] == "gists_admin"
        and value["host"] == primary["Endpoint"]["Address"]
        and len(value["password"]) >= 32,
        "master secret holds the username, the primary's host and a long password",
    )
    check(value["password"] not in json.dumps(outputs), "the password is in no output")
    with open(state_path, encoding="utf-8") as f:
        check(value["password"] not in f.read(), "the password is not in the Terraform state (write-only)")


def assert_destroyed(endpoint: str) -> None:
    instances = client("rds", endpoint).describe_db_instances()["DBInstances"]
    check(not instances, f"no DB instance left: {[i['DBInstanceIdentifier'] for i in instances]}")
    alarms = client("cloudwatch", endpoint).describe_alarms()["MetricAlarms"]
    check(not alarms, f"no alarm left: {[a['AlarmName'] for a in alarms]}")
    subscriptions = client("rds", endpoint).describe_event_subscriptions()["EventSubscriptionsList"]
    check(not subscriptions, f"no event subscription left: {[s['CustSubscriptionId'] for s in subscriptions]}")


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "applied":
        assert_applied(argv[1], argv[2], argv[3])
    elif len(argv) == 2 and argv[0] == "destroyed":
        assert_destroyed(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"boto3: {_passes} passed, {len(_failures)} failed")
    return 1 if _failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
