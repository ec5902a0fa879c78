"""deploy/kubernetes.yaml beyond its schema: the grace period outlasts the
shutdown delay plus the drain timeout, and the image is the one the README
tells how to build and push (tagged with the crate's version)."""

import re
import sys

import yaml  # PyYAML: a dependency of kubernetes-validate


def seconds(text):
    """A syncnet duration (`250ms`, `10s`, `5m`, `1h`, `0`) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not match:
        sys.exit(f"deploy/kubernetes.yaml: cannot read the duration {text!r}")
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * unit


version = re.search(r'^version = "([^"]+)"', open("Cargo.toml").read(), re.M).group(1)
deployments = [d for d in yaml.safe_load_all(open("deploy/kubernetes.yaml"))
               if d and d.get("kind") == "Deployment"]
pod = deployments[0]["spec"]["template"]["spec"]
container = pod["containers"][0]
args = dict(a[2:].split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)
delay = seconds(args.get("shutdown-delay", "0"))
drain = seconds(args.get("drain-timeout", "30s"))
grace = pod["terminationGracePeriodSeconds"]
image = f"registry.example.com/syncnet:{version}"

problems = []
if grace <= delay + drain:
    problems.append(f"terminationGracePeriodSeconds {grace} <= shutdown delay {delay} + drain timeout {drain}")
if container["image"] != image:
    problems.append(f"the image is {container['image']}, not {image}")
if f"buildah push {image}" not in open("README.md").read():
    problems.append(f"README.md does not show how to build and push {image}")
if problems:
    sys.exit("deploy/kubernetes.yaml: " + "; ".join(problems))
print(f"kubernetes: grace {grace}s > delay {delay:g}s + drain {drain:g}s; image {image}")
