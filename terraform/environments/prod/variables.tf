variable "project_id" {
  description = "GCP project of the prod environment; null means \"<manifest project>-prod\"."
  type        = string
  default     = null
}

variable "build_dir" {
  description = "Output folder of infra/build.py, relative to this folder unless absolute."
  type        = string
  default     = "../../../build"
}

variable "region" {
  description = "Region of every regional resource; null means the manifest's region."
  type        = string
  default     = null
}
