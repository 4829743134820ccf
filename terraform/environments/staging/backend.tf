# State lives in a per-project GCS bucket, created once by hand (docs/decisions/0002):
#   terraform init -backend-config="bucket=<project id>-tfstate"
terraform {
  backend "gcs" {
    prefix = "payloom/staging"
  }
}
