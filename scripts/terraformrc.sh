#!/usr/bin/env bash
# Print the path of a Terraform CLI config that installs the AWS provider from a local filesystem
# mirror, when this machine has one (offline CI machines do). Prints nothing elsewhere: plain
# `terraform init` then downloads providers from the registry as usual.
set -euo pipefail
out="${1:-build/terraformrc}"
# Every make command runs this: reuse the last answer (a search of / takes long on a machine without a mirror).
if [ -z "${TF_PROVIDER_MIRROR:-}" ] && [ -f "$out" ] && [ -d "$(sed -n 's/^ *path *= *"\(.*\)"$/\1/p' "$out")" ]; then
  echo "$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"; exit 0
fi
[ -f "$out.none" ] && [ -z "${TF_PROVIDER_MIRROR:-}" ] && exit 0
mirror=""
for root in "${TF_PROVIDER_MIRROR:-}" /opt/tf-plugins /usr/share/terraform/plugins /usr/local/share/terraform/plugins "$HOME/.terraform.d/plugins"; do
  if [ -n "$root" ] && [ -d "$root/registry.terraform.io/hashicorp/aws" ]; then mirror="$root"; break; fi
done
if [ -z "$mirror" ]; then
  found=$(find / -xdev -name 'terraform-provider-aws_*' -path '*registry.terraform.io*' 2>/dev/null | head -n 1 || true)
  [ -n "$found" ] && mirror="${found%%/registry.terraform.io/*}"
fi
mkdir -p "$(dirname "$out")"
if [ -z "$mirror" ]; then touch "$out.none"; exit 0; fi
rm -f "$out.none"
cat > "$out" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
RC
echo "$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
