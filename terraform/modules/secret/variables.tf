variable "project_id" {
  type = string
}

variable "secret_id" {
  type = string
}

variable "description" {
  type    = string
  default = ""
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "accessors" {
  description = "IAM members (function service accounts) allowed to read this secret's versions."
  type        = list(string)
  default     = []
}
