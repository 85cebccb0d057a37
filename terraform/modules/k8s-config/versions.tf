# No provider on purpose: this module only renders text (the files that
# kustomize reads), so `terraform test` checks it without credentials or
# network access. The environment writes its `files` output with the local
# provider.
terraform {
  required_version = ">= 1.9.0"
}
