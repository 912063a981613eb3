# Portal notification settings and records arrive with the notifications feature.
