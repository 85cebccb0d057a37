terraform {
  required_version = ">= 1.9.0"

  required_providers {
    cockroach = {
      source = "cockroachdb/cockroach"
      # 1.8.0 renamed the DEDICATED plan to ADVANCED (the database module's
      # plan); deploy-tests/pins.py checks the floor.
      version = ">= 1.8.0, < 2.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5.0, < 4.0.0"
    }
  }
}
