terraform {
  required_version = ">= 1.6"
  required_providers {
    # API Gateway resources exist only in the beta provider.
    google-beta = {
      source = "hashicorp/google-beta"
    }
  }
}
