#!/usr/bin/env python3
"""Consistency test of the deployment against the binaries.

Parses terraform/ (HCL, and the topology module's outputs through
`terraform console`), the rendered k8s/ overlays, the controller's
configuration in k8s/, monitoring/, and the binaries' own configuration
(service/config/default.toml, failover-controller/config/default.toml) and
sources. Fails when region names, ports, health paths, DNS names, shutdown
timings, metric names or the mount of the probes' TLS files disagree, when
a pin is too loose (pins.py: provider version floors, images by digest),
or when a document says what the sources no longer do (docs_claims.py).

Usage: consistency.py RENDERED_DIR   (RENDERED_DIR holds <overlay>.yaml, as
scripts/check-deploy.sh writes them)
"""

import json
import pathlib
import re
import subprocess
import sys
import tomllib

import hcl2
import yaml

import docs_claims
import pins

ROOT = pathlib.Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
K8S = ROOT / "k8s"


class Checks:
    """Collects results; every check prints one line."""

    def __init__(self):
        self.passed = 0
        self.failed = []

    def equal(self, what, actual, expected):
        if actual == expected:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed.append(what)
            print(f"  FAIL  {what}: got {actual!r}, expected {expected!r}")

    def true(self, what, condition, detail=""):
        self.equal(what + (f" ({detail})" if detail and not condition else ""), bool(condition), True)

    def skip(self, what, reason):
        print(f"  skip  {what}: {reason}")


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def hcl(path):
    with open(path) as handle:
        return hcl2.load(handle)


def first(value):
    """bc-python-hcl2 wraps attribute values in one-element lists."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def resources(path, resource_type):
    found = {}
    for block in hcl(path).get("resource", []):
        for kind, instances in block.items():
            if kind == resource_type:
                found.update(instances)
    return found


def topology_outputs(regions, primary, zone_name):
    """Evaluates the provider-free topology module with the example's inputs."""
    module = TERRAFORM / "modules" / "topology"
    env = {"TF_IN_AUTOMATION": "1", "PATH": __import__("os").environ["PATH"]}
    for key in ("TF_CLI_CONFIG_FILE", "HOME"):
        if key in __import__("os").environ:
            env[key] = __import__("os").environ[key]
    subprocess.run(["terraform", "init", "-backend=false", "-input=false", "-no-color"],
                   cwd=module, env=env, check=True, capture_output=True)
    expression = ("jsonencode({regions = local.regions, ports = local.ports, paths = local.paths, "
                  "service_fqdn = local.service_fqdn, authoritative_zone = local.authoritative_zone, "
                  "health_check = local.health_check, ttl = var.record_ttl_seconds, "
                  "namespace = var.kubernetes_namespace, prefix = var.name_prefix})")
    result = subprocess.run(
        ["terraform", "console", "-no-color",
         "-var", f"regions={json.dumps(regions)}", "-var", f"primary_region={primary}",
         "-var", f"zone_name={zone_name}"],
        cwd=module, env=env, input=expression, capture_output=True, text=True, check=True)
    return json.loads(json.loads(result.stdout.strip()))


def rendered_objects(path):
    objects = {}
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            objects[(document["kind"], document["metadata"]["name"].rsplit("-", 1)[0]
                     if document["kind"] == "ConfigMap" else document["metadata"]["name"])] = document
    return objects


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def named_ports(spec_container):
    return {port["name"]: port["containerPort"] for port in spec_container["ports"]}


# Tables of the controller's configuration whose keys are region names, not
# settings: a key inside them is data, known to the controller if the table is.
REGION_KEYED = {"probe.round_trip_ms", "dns.latency_ms"}


def keys_of(table, prefix=""):
    keys = set()
    for key, value in table.items():
        keys.add(prefix + key)
        if isinstance(value, dict) and prefix + key not in REGION_KEYED:
            keys |= keys_of(value, prefix + key + ".")
    return keys


def rust_string_literals(crate):
    literals = set()
    for source in (ROOT / crate / "src").rglob("*.rs"):
        literals |= set(re.findall(r'"([^"\\]*)"', source.read_text()))
    return literals


def region_setting_fields():
    """The keys a [[regions]] entry may have: the fields of RegionSettings."""
    source = (ROOT / "failover-controller" / "src" / "config" / "mod.rs").read_text()
    body = re.search(r"pub struct RegionSettings \{(.*?)\n\}", source, re.S).group(1)
    return set(re.findall(r"^\s*pub (\w+):", body, re.M))


TEST_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")

# The probes' TLS settings and the keys of the optional Secret that holds
# their files (the shape of a cert-manager Certificate's Secret).
PROBE_TLS_SECRET = "failover-controller-probe-tls"
PROBE_TLS_FILES = {"ca_file": "ca.crt", "client_cert_file": "tls.crt", "client_key_file": "tls.key"}


def probe_tls_paths(config_text):
    """The probe TLS settings of config.toml, set or commented out."""
    return dict(re.findall(r'^#?\s*(ca_file|client_cert_file|client_key_file)\s*=\s*"([^"]*)"', config_text, re.M))


def check_probe_tls_mount(checks, controller, config_text, controller_defaults):
    """The optional Secret is mounted read-only, and config.toml's probe TLS
    settings (commented until the Secret exists) name its keys in that mount."""
    pod = controller["spec"]["template"]["spec"]
    volume = next((v for v in pod.get("volumes", []) if v.get("secret", {}).get("secretName") == PROBE_TLS_SECRET), None)
    checks.true(f"controller pod has a volume of the Secret {PROBE_TLS_SECRET}, optional", volume is not None and volume["secret"].get("optional") is True)
    mount = next((m for m in container(controller).get("volumeMounts", []) if volume and m["name"] == volume["name"]), None)
    checks.true(f"{PROBE_TLS_SECRET} is mounted read-only in the controller container", mount is not None and mount.get("readOnly") is True)
    if mount is None:
        return
    expected = {setting: f"{mount['mountPath']}/{key}" for setting, key in PROBE_TLS_FILES.items()}
    checks.equal("config.toml probe TLS files are the Secret's keys in its mount", probe_tls_paths(config_text), expected)
    if controller_defaults is not None:
        checks.equal("probe TLS settings are keys of the controller's [probe]", sorted(set(PROBE_TLS_FILES) - set(controller_defaults["probe"])), [])


def check_controller_regions(checks, controller_config, topo):
    """Every region is probed through its own name over HTTPS and steered by
    an alias record to its ALB, as Terraform builds them; no placeholders."""
    region_tf = TERRAFORM / "modules" / "region"
    # The controller owns the latency records and creates them itself, with
    # the region's ALB as alias target evaluated for health.
    evaluate = True
    template = TERRAFORM / "modules" / "k8s-config" / "templates" / "failover-controller.toml.tftpl"
    rendered = re.search(r"\[\[regions\]\](.*?)%\{ endfor", template.read_text(), re.S) if template.exists() else None
    checks.true("terraform k8s-config renders the controller's [[regions]]", rendered is not None)
    region_outputs = (region_tf / "outputs.tf").read_text()
    for attribute in ("load_balancer_dns_name", "load_balancer_zone_id", "regional_fqdn"):
        checks.true(f"region module outputs {attribute}", f'output "{attribute}"' in region_outputs)
    lb_name = re.search(r'lb_name = "\$\{var.name_prefix\}-\$\{var.short_name\}-api"', (region_tf / "load_balancer.tf").read_text())
    for entry in controller_config["regions"]:
        region = entry["name"]
        settings = topo["regions"][region]
        where = f"controller config {region}"
        instances = entry.get("instances", [])
        checks.equal(f"{where}: no placeholder (TEST-NET) instances", [i for i in instances if i.startswith(TEST_NETS)], [])
        # The controllers probe health apart from the drain flag; the Route53
        # health check probes admission. Probing admission would keep a
        # region the controller drained out forever.
        url = f"https://{settings['regional_fqdn']}{topo['paths']['instance_health']}"
        checks.equal(f"{where}: health_urls = the region's own name + instance-health path", entry.get("health_urls"), [url])
        alias = entry.get("alias_dns_name", "")
        pattern = rf"^(dualstack\.)?{re.escape(topo['prefix'])}-{re.escape(settings['short_name'])}-api-[0-9a-z-]+\.{re.escape(region)}\.elb\.amazonaws\.com\.?$"
        checks.true(f"{where}: alias_dns_name is the region module's ALB ({topo['prefix']}-{settings['short_name']}-api-*.{region}.elb.amazonaws.com)",
                    lb_name is not None and re.match(pattern, alias), alias)
        checks.true(f"{where}: alias_hosted_zone_id set", bool(entry.get("alias_hosted_zone_id")))
        checks.equal(f"{where}: evaluate_target_health = global module latency record", entry.get("evaluate_target_health", False), evaluate)
        checks.true(f"{where}: health_check_id set (restore must keep the record's health check)", bool(entry.get("health_check_id")))
        if rendered is not None:
            for key in entry:
                checks.true(f"{where}: {key} is rendered by terraform/modules/k8s-config", f"\n{key} = " in rendered.group(1))


def check_state_encryption(checks):
    """The state holds the database passwords: the S3 backend encrypts it,
    with the customer-managed KMS key the example backend settings name,
    and locks it (use_lockfile)."""
    env = TERRAFORM / "environments" / "example"
    versions = (env / "versions.tf").read_text()
    backend = re.search(r'backend "s3" \{(.*?)\}', versions, re.S)
    body = backend.group(1) if backend else ""
    checks.true("the example's state backend is S3", backend is not None)
    checks.true("the S3 backend encrypts the state (encrypt = true)", re.search(r"\bencrypt\s*=\s*true\b", body) is not None, body)
    checks.true("the S3 backend locks the state (use_lockfile = true)", re.search(r"\buse_lockfile\s*=\s*true\b", body) is not None, body)
    example = (env / "backend.hcl.example").read_text()
    checks.true("backend.hcl.example names the state's KMS key (kms_key_id)", re.search(r'^kms_key_id\s*=\s*"arn:aws:kms:', example, re.M) is not None, example)


def check_dns_exposure(checks, topo, rendered_dir, overlays):
    """The controllers' DNS from the internet: an NLB per region with static
    addresses on UDP and TCP 53, glued and delegated; DS only once the zone
    is signed; the pods admit the NLB's health checks."""
    import ipaddress
    region_tf = TERRAFORM / "modules" / "region"
    nlb = resources(region_tf / "dns_load_balancer.tf", "aws_lb").get("dns", {})
    checks.equal("region module: the DNS load balancer is a network load balancer", first(nlb.get("load_balancer_type")), "network")
    checks.true("region module: the DNS load balancer has an Elastic IP per public subnet", "allocation_id" in str(nlb.get("dynamic", "")))
    listener = resources(region_tf / "dns_load_balancer.tf", "aws_lb_listener").get("dns", {})
    checks.equal("region module: DNS listener is TCP_UDP on 53", (first(listener.get("protocol")), first(listener.get("port"))), ("TCP_UDP", 53))
    target = resources(region_tf / "dns_load_balancer.tf", "aws_lb_target_group").get("dns", {})
    checks.equal("region module: DNS target group is the controller's port", (first(target.get("protocol")), first(target.get("port")), first(target.get("target_type"))), ("TCP_UDP", topo["ports"]["controller_dns"], "ip"))
    health = first(target.get("health_check", [{}]))
    checks.equal("region module: DNS targets are healthy when the controller is ready", (first(health.get("path")), int(first(health.get("port")))), ("/readyz", topo["ports"]["controller_http"]))
    example = (TERRAFORM / "environments" / "example" / "main.tf").read_text()
    checks.true("example: the global module glues and delegates to every region's DNS addresses", "controller_name_servers" in example and "dns_addresses" in example)
    signer = resources(TERRAFORM / "modules" / "global" / "zone.tf", "aws_route53_record").get("delegation_signer", {})
    checks.true("global module: the DS record waits for DNSSEC signing", "aws_route53_hosted_zone_dnssec.this" in str(signer.get("depends_on", "")))
    for region in overlays:
        objects = rendered_objects(rendered_dir / f"{region}.yaml")
        binding = objects.get(("TargetGroupBinding", "failover-controller-dns"), {}).get("spec", {})
        short = topo["regions"][region]["short_name"]
        checks.true(f"{region}: the controller's DNS TargetGroupBinding names the region's DNS target group",
                    str(binding.get("targetGroupARN", "")).startswith(f"arn:aws:elasticloadbalancing:{region}:") and f":targetgroup/{topo['prefix']}-{short}-dns-pods/" in binding.get("targetGroupARN", ""))
        policy = objects[("NetworkPolicy", "failover-controller")]["spec"]["ingress"]
        blocks = [ipaddress.ip_network(peer["ipBlock"]["cidr"]) for rule in policy for peer in rule.get("from", []) if "ipBlock" in peer
                  if any(p["port"] == topo["ports"]["controller_http"] for p in rule.get("ports", []))]
        vpc = ipaddress.ip_network(topo["regions"][region]["vpc_cidr"])
        checks.true(f"{region}: the controller's NetworkPolicy admits /readyz from the VPC ({vpc})", any(vpc.subnet_of(block) for block in blocks))


def check_record_ownership(checks, topo):
    """One owner per Route53 record: no Terraform module declares a record
    of the service name or a latency record; the controller owns those."""
    declared = []
    for path in sorted(TERRAFORM.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        for name, record in resources(path, "aws_route53_record").items():
            declared.append((path.relative_to(ROOT).as_posix(), name, record))
    checks.true("terraform declares Route53 records (zone delegation, regional names, glue)", len(declared) > 0)
    for where, name, record in declared:
        checks.true(f"{where} aws_route53_record.{name} is no latency record (the controller owns those)", "latency_routing_policy" not in record)
        checks.true(f"{where} aws_route53_record.{name} is not the service name", "service_fqdn" not in str(first(record.get("name", ""))))


def check_migrations(checks, rendered_dir, overlays, primary, tf_regions):
    """The migrate Jobs run in the primary region only, before the
    Deployments (Argo CD PreSync hooks; the service pods' init container
    waits for the schema), told the database regions."""
    jobs = {"service-migrate": ["migrate"], "failover-controller-migrate": ["migrate"]}
    for region in overlays:
        objects = rendered_objects(rendered_dir / f"{region}.yaml")
        found = sorted(name for kind, name in objects if kind == "Job")
        checks.equal(f"{region}: migrate Jobs", found, sorted(jobs) if region == primary else [])
        init = objects[("Deployment", "service")]["spec"]["template"]["spec"].get("initContainers", [])
        checks.equal(f"{region}: service pods wait for the schema", [(c["name"], c["args"]) for c in init], [("wait-for-schema", ["wait-for-schema"])])
        if region != primary:
            continue
        for name, args in jobs.items():
            job = objects[("Job", name)]
            annotations = job["metadata"].get("annotations", {})
            checks.equal(f"{name} is an Argo CD PreSync hook", annotations.get("argocd.argoproj.io/hook"), "PreSync")
            checks.equal(f"{name} replaces the previous release's Job", annotations.get("argocd.argoproj.io/hook-delete-policy"), "BeforeHookCreation")
            checks.equal(f"{name} args", container(job)["args"], args)
        waves = {name: int(objects[("Job", name)]["metadata"]["annotations"].get("argocd.argoproj.io/sync-wave", "0")) for name in jobs}
        checks.true("service-migrate runs in an earlier sync wave than failover-controller-migrate", waves["service-migrate"] < waves["failover-controller-migrate"])
        controller_init = objects[("Job", "failover-controller-migrate")]["spec"]["template"]["spec"].get("initContainers", [])
        checks.equal("failover-controller-migrate waits for the service's schema", [c["args"] for c in controller_init], [["wait-for-schema"]])
        service_job = objects[("Job", "service-migrate")]
        env_sources = [ref["configMapRef"]["name"] for ref in container(service_job).get("envFrom", [])]
        regions_map = next((objects[("ConfigMap", n.rsplit("-", 1)[0])]["data"] for n in env_sources if n.startswith("database-migrate")), {})
        entries = [e.split("=", 1) for e in regions_map.get("SERVICE_DATABASE_REGIONS", "").split(",") if e]
        checks.equal("service-migrate SERVICE_DATABASE_REGIONS: service regions, primary first", [e[0] for e in entries], tf_regions)
        checks.true("service-migrate SERVICE_DATABASE_REGIONS: every entry names its CockroachDB region", all(len(e) == 2 and e[1] for e in entries), str(entries))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rendered_dir = pathlib.Path(sys.argv[1])
    checks = Checks()

    # Terraform: the example environment's inputs and the topology outputs.
    example = TERRAFORM / "environments" / "example"
    modules = {name: first(body) for block in hcl(example / "main.tf")["module"] for name, body in block.items()}
    topology_input = modules["topology"]
    tf_regions = first(topology_input["regions"])
    primary = first(topology_input["primary_region"])
    zone_name = re.search(r'^zone_name\s*=\s*"([^"]+)"', (example / "terraform.tfvars.example").read_text(), re.M).group(1)
    topo = topology_outputs(tf_regions, primary, zone_name)
    region_modules = {first(body["region"]): body for name, body in modules.items()
                      if first(body["source"]) == "../../modules/region"}
    providers = {first(body["alias"]): first(body["region"])
                 for block in hcl(example / "versions.tf")["provider"] for kind, body in block.items()
                 if kind == "aws" for body in [first(body)]}

    print("regions")
    checks.equal("terraform example: one region module per topology region", sorted(region_modules), sorted(tf_regions))
    for region, body in region_modules.items():
        alias = re.search(r"aws\.(\w+)", str(body["providers"])).group(1)
        checks.equal(f"terraform example: {region} module's aws provider region", providers.get(alias), region)
    overlays = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
    checks.equal("k8s overlays: one per terraform region", overlays, sorted(tf_regions))

    service_defaults = tomllib.loads((ROOT / "service" / "config" / "default.toml").read_text())
    controller_defaults_path = ROOT / "failover-controller" / "config" / "default.toml"
    controller_defaults = tomllib.loads(controller_defaults_path.read_text()) if controller_defaults_path.exists() else None
    controller_config_text = (K8S / "base" / "failover-controller" / "config.toml").read_text()
    controller_config = tomllib.loads(controller_config_text)
    checks.equal("controller config: regions", [r["name"] for r in controller_config["regions"]], tf_regions)
    for entry in controller_config["regions"]:
        checks.equal(f"controller config: {entry['name']} aws_region", entry.get("aws_region"), entry["name"])

    params_by_region = {}
    for region in overlays:
        params = dict(line.split("=", 1) for line in (K8S / "overlays" / region / "params.env").read_text().split("\n") if "=" in line)
        params_by_region[region] = params
        objects = rendered_objects(rendered_dir / f"{region}.yaml")
        service = objects[("Deployment", "service")]
        controller = objects[("Deployment", "failover-controller")]
        service_config = objects[("ConfigMap", "service-config")]["data"]
        controller_env = objects[("ConfigMap", "failover-controller-env")]["data"]
        print(f"overlay {region}")
        checks.equal("params.env REGION", params["REGION"], region)
        checks.equal("SERVICE_REGION", service_config["SERVICE_REGION"], region)
        checks.equal("FAILOVER_REGION", controller_env["FAILOVER_REGION"], region)
        for deployment in (service, controller):
            checks.equal(f"{deployment['metadata']['name']} pod label region", deployment["spec"]["template"]["metadata"]["labels"].get("region"), region)
        arn = objects[("TargetGroupBinding", "service")]["spec"]["targetGroupARN"]
        short = topo["regions"][region]["short_name"]
        checks.true("TargetGroupBinding ARN is the region module's target group",
                    arn.startswith(f"arn:aws:elasticloadbalancing:{region}:") and f":targetgroup/{topo['prefix']}-{short}-api-pods/" in arn, arn)
        role = objects[("ServiceAccount", "failover-controller")]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        checks.true("controller IRSA role is the region module's role", role.endswith(f":role/{topo['regions'][region]['cluster_name']}-failover-controller"), role)
        checks.equal("params.env SERVICE_FQDN", params["SERVICE_FQDN"], topo["service_fqdn"])
        checks.equal("namespace", service["metadata"]["namespace"], topo["namespace"])

        # Ports.
        service_ports = named_ports(container(service))
        checks.equal("service container port http = default.toml listen_address", service_ports["http"], port_of(service_defaults["listen_address"]))
        checks.equal("service container port admin = default.toml admin_address", service_ports["admin"], port_of(service_defaults["admin_address"]))
        checks.equal("service container port http = terraform ports.service_http", service_ports["http"], topo["ports"]["service_http"])
        checks.equal("service container port admin = terraform ports.service_admin", service_ports["admin"], topo["ports"]["service_admin"])
        checks.equal("SERVICE_LISTEN_ADDRESS", service_config["SERVICE_LISTEN_ADDRESS"], service_defaults["listen_address"])
        checks.equal("SERVICE_ADMIN_ADDRESS", service_config["SERVICE_ADMIN_ADDRESS"], service_defaults["admin_address"])
        service_object_ports = {p["name"]: p for p in objects[("Service", "service")]["spec"]["ports"]}
        checks.equal("TargetGroupBinding port = Service port http", objects[("TargetGroupBinding", "service")]["spec"]["serviceRef"]["port"], service_object_ports["http"]["port"])
        policy_ports = {p["port"] for rule in objects[("NetworkPolicy", "service")]["spec"]["ingress"] for p in rule["ports"]}
        checks.equal("service NetworkPolicy admits http and admin ports", policy_ports, {service_ports["http"], service_ports["admin"]})
        controller_ports = named_ports(container(controller))
        checks.equal("controller container port http = terraform ports.controller_http", controller_ports["http"], topo["ports"]["controller_http"])
        checks.equal("controller container DNS ports = terraform ports.controller_dns", {controller_ports["dns-udp"], controller_ports["dns-tcp"]}, {topo["ports"]["controller_dns"]})
        checks.equal("controller config http_listen port", port_of(controller_config["http_listen"]), controller_ports["http"])
        checks.equal("controller config dns_listen port", port_of(controller_config["dns_listen"]), controller_ports["dns-udp"])
        if controller_defaults is not None:
            checks.equal("controller container port http = controller default.toml http_listen", controller_ports["http"], port_of(controller_defaults["http_listen"]))
            checks.equal("controller container DNS port = controller default.toml dns_listen", controller_ports["dns-udp"], port_of(controller_defaults["dns_listen"]))

        # Health paths and probes.
        spec = container(service)
        checks.equal("service livenessProbe path", spec["livenessProbe"]["httpGet"]["path"], topo["paths"]["liveness"])
        checks.equal("service startupProbe path", spec["startupProbe"]["httpGet"]["path"], topo["paths"]["liveness"])
        checks.equal("service readinessProbe path", spec["readinessProbe"]["httpGet"]["path"], topo["paths"]["readiness"])
        checks.equal("service probes use port http", {spec[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}, {"http"})
        monitor = objects[("ServiceMonitor", "service")]["spec"]["endpoints"][0]
        checks.equal("service ServiceMonitor scrapes admin /metrics", (monitor["port"], monitor["path"]), ("admin", topo["paths"]["metrics"]))
        monitor = objects[("ServiceMonitor", "failover-controller")]["spec"]["endpoints"][0]
        checks.equal("controller ServiceMonitor scrapes http /metrics", (monitor["port"], monitor["path"]), ("http", "/metrics"))
        check_probe_tls_mount(checks, controller, controller_config_text, controller_defaults)

        # The HPA owns the service's replica count; PDB and zone spread.
        checks.true("service Deployment leaves replicas to the HPA", "replicas" not in service["spec"])
        checks.equal("HPA targets the service Deployment", objects[("HorizontalPodAutoscaler", "service")]["spec"]["scaleTargetRef"]["name"], "service")
        checks.true("service has a PodDisruptionBudget", ("PodDisruptionBudget", "service") in objects)
        spread = service["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        checks.true("service pods spread across zones", any(c["topologyKey"] == "topology.kubernetes.io/zone" and c["whenUnsatisfiable"] == "DoNotSchedule" for c in spread))

        # Shutdown: the kubelet must not kill a pod that is still draining.
        drain_ms = int(service_config.get("SERVICE_DRAIN_PERIOD_MS", service_defaults["drain_period_ms"]))
        grace_ms = int(service_config.get("SERVICE_SHUTDOWN_GRACE_MS", service_defaults["shutdown_grace_ms"]))
        checks.equal("SERVICE_DRAIN_PERIOD_MS = default.toml drain_period_ms", drain_ms, service_defaults["drain_period_ms"])
        pre_stop = spec["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace_period = service["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        checks.true("terminationGracePeriodSeconds > preStop + drain period + shutdown grace",
                    grace_period > pre_stop + (drain_ms + grace_ms) / 1000, f"{grace_period} vs {pre_stop}+{drain_ms}ms+{grace_ms}ms")

    print("terraform")
    region_tf = TERRAFORM / "modules" / "region"
    target_group = resources(region_tf / "load_balancer.tf", "aws_lb_target_group")["service"]
    checks.equal("target group port = service http port", first(target_group["port"]), port_of(service_defaults["listen_address"]))
    checks.equal("target group health check path = readiness path", first(first(target_group["health_check"])["path"]), topo["paths"]["readiness"])
    drain_s = (service_defaults["drain_period_ms"] + service_defaults["shutdown_grace_ms"]) / 1000
    checks.true("target group deregistration delay <= drain period + shutdown grace", first(target_group["deregistration_delay"]) <= drain_s)
    for name, rule in {**resources(region_tf / "load_balancer.tf", "aws_vpc_security_group_egress_rule"),
                       **resources(region_tf / "load_balancer.tf", "aws_vpc_security_group_ingress_rule")}.items():
        if "pods" in name:
            checks.equal(f"security group rule {name} port", first(rule["from_port"]), port_of(service_defaults["listen_address"]))
    checks.equal("Route53 health check path", topo["health_check"]["resource_path"], "/healthz/region")
    checks.equal("unrouted instance health check path", topo["health_check"]["instance_resource_path"], "/healthz/instance")
    checks.equal("Route53 health check port", topo["health_check"]["port"], 443)
    addons = re.search(r'"vpc-cni"\s*=\s*jsonencode\(\{([^}]*)\}\)', (region_tf / "eks.tf").read_text())
    checks.true("VPC CNI add-on enforces NetworkPolicy (enableNetworkPolicy)", addons is not None and re.search(r'enableNetworkPolicy\s*=\s*"true"', addons.group(1)))
    iam = (region_tf / "iam.tf").read_text()
    checks.true("IRSA subject names the failover-controller ServiceAccount", ':failover-controller"' in iam)
    checks.true("region module's lb name follows <prefix>-<short>-api", 'lb_name = "${var.name_prefix}-${var.short_name}-api"' in (region_tf / "load_balancer.tf").read_text())

    print("controller configuration")
    checks.equal("route53.record_name = service name", controller_config["route53"]["record_name"], topo["service_fqdn"] + ".")
    checks.equal("dns.zone = authoritative zone", controller_config["dns"]["zone"], topo["authoritative_zone"] + ".")
    checks.equal("dns.nameservers = the regions' name servers", controller_config["dns"]["nameservers"], [topo["regions"][r]["name_server_fqdn"] + "." for r in tf_regions])
    checks.equal("dns.ttl_seconds = terraform record_ttl_seconds", controller_config["dns"]["ttl_seconds"], topo["ttl"])
    checks.equal("probe.path = instance-health path", controller_config["probe"]["path"], topo["paths"]["instance_health"])
    checks.true("probe.path is not the Route53 (admission) health check path", controller_config["probe"]["path"] != topo["health_check"]["resource_path"])
    zone_ids = {params["HOSTED_ZONE_ID"] for params in params_by_region.values()}
    checks.equal("params.env HOSTED_ZONE_ID = route53.hosted_zone_id", zone_ids, {controller_config["route53"]["hosted_zone_id"]})
    if controller_defaults is None:
        checks.skip("controller config keys", "failover-controller/config/default.toml does not exist yet")
    else:
        unknown = keys_of({k: v for k, v in controller_config.items() if k != "regions"}) - keys_of(controller_defaults)
        checks.equal("controller config uses only keys the controller knows", sorted(unknown), [])
        # The round trips the far regions' probe timeouts derive from name
        # the configured regions only.
        regions = {entry["name"] for entry in controller_config["regions"]}
        round_trips = controller_config["probe"].get("round_trip_ms", {})
        named = set(round_trips) | {to for row in round_trips.values() for to in row}
        checks.equal("probe.round_trip_ms names the configured regions only", sorted(named - regions), [])
        checks.true("probe.round_trip_ms gives a round trip for every pair of regions",
                    all(b in round_trips.get(a, {}) or a in round_trips.get(b, {})
                        for a in regions for b in regions if a < b), round_trips)
        checks.equal("controller default probe.path = instance-health path", controller_defaults["probe"]["path"], topo["paths"]["instance_health"])
        known = region_setting_fields()
        used = set().union(*(r.keys() for r in controller_config["regions"]))
        checks.equal("controller config region keys are fields of RegionSettings", sorted(used - known), [])

    print("controller regions (health URLs, alias targets)")
    check_controller_regions(checks, controller_config, topo)

    print("controllers' DNS from the internet")
    check_dns_exposure(checks, topo, rendered_dir, overlays)

    print("record ownership")
    check_record_ownership(checks, topo)

    print("provider versions")
    pins.check_cockroach_provider_floor(checks, TERRAFORM)

    print("images by digest")
    pins.check_images_by_digest(checks, K8S, rendered_dir, overlays)

    print("documents against the sources")
    docs_claims.check_metric_label_claim(checks, ROOT)
    docs_claims.check_database_readme(checks, ROOT)

    print("migrations")
    check_migrations(checks, rendered_dir, overlays, primary, tf_regions)

    print("terraform state")
    check_state_encryption(checks)

    print("binaries' sources")
    for crate, paths in (("service", [topo["paths"]["liveness"], topo["paths"]["readiness"], topo["paths"]["region_health"], topo["paths"]["instance_health"], topo["paths"]["metrics"]]),
                         ("failover-controller", ["/healthz", "/readyz", "/metrics"])):
        literals = rust_string_literals(crate)
        if not literals:
            checks.skip(f"{crate} route paths", "no Rust sources yet")
            continue
        for path in paths:
            checks.true(f"{crate} source defines {path}", any(literal == path or literal.endswith(path) and literal.startswith("/") for literal in literals))

    print("alerts: a runbook each, the PrometheusRule in every overlay")
    rules = yaml.safe_load((ROOT / "monitoring" / "rules.yaml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    for rule in alerts:
        url = rule.get("annotations", {}).get("runbook_url", "")
        page = ROOT / "docs" / "runbooks" / f"{rule['alert']}.md"
        checks.true(f"{rule['alert']}: runbook_url names docs/runbooks/{rule['alert']}.md", url.endswith(f"/docs/runbooks/{rule['alert']}.md"), url)
        checks.true(f"{rule['alert']}: its runbook exists and has its title", page.exists() and page.read_text().startswith(f"# {rule['alert']}"))
    fast = next(rule for rule in alerts if rule["alert"] == "ServiceErrorBudgetBurnFast")
    checks.true("the fast burn-rate alert has no `for` (its short window is the delay)", "for" not in fast)
    for region in overlays:
        objects = rendered_objects(rendered_dir / f"{region}.yaml")
        checks.true(f"{region}: PrometheusRule geo applied", ("PrometheusRule", "geo") in objects)

    print("metric names in monitoring/")
    used = set()
    texts = [(ROOT / "monitoring" / "rules.yaml").read_text(), (ROOT / "monitoring" / "grafana-dashboard.json").read_text()]
    for text in texts:
        used |= set(re.findall(r"\b((?:service|failover)_[a-z0-9_]+)", text))
    used = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    used -= {"service_request_errors"}  # recording-rule name part (slo:service_request_errors:...)
    for crate, prefix in (("service", "service_"), ("failover-controller", "failover_")):
        literals = rust_string_literals(crate)
        names = sorted(n for n in used if n.startswith(prefix))
        if not any(l.startswith(prefix) for l in literals):
            checks.skip(f"{crate} metric names", "the crate defines no metrics yet")
            continue
        missing = [n for n in names if n not in literals]
        checks.equal(f"{crate}: every metric used by alerts and dashboard exists", missing, [])

    total = checks.passed + len(checks.failed)
    print(f"consistency: {checks.passed} of {total} checks passed")
    if checks.failed:
        sys.exit(f"consistency: {len(checks.failed)} failed: " + "; ".join(checks.failed))


if __name__ == "__main__":
    main()
