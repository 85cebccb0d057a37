terraform {
  required_version = ">= 1.10.0" # backend "s3" use_lockfile needs 1.10

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 7.0.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0.0, < 5.0.0"
    }
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
    # Writes the files kustomize reads (module k8s_config).
    local = {
      source  = "hashicorp/local"
      version = ">= 2.5.0, < 3.0.0"
    }
  }

  # State in S3 with native locking; give bucket, key and region with
  # `terraform init -backend-config=backend.hcl`.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

# One aws provider per region. Terraform cannot create providers in a loop,
# so the three regions of this example are spelled out here and below.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"
  default_tags {
    tags = local.tags
  }
}

# Reads COCKROACH_API_KEY from the environment.
provider "cockroach" {}
