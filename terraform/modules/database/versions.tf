terraform {
  required_version = ">= 1.9.0"

  required_providers {
    cockroach = {
      source  = "cockroachdb/cockroach"
      version = ">= 1.7.0, < 2.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5.0, < 4.0.0"
    }
  }
}
