"""Provider batches: jobs whose deadline leaves room go to the provider's own Batch API at half
price. These modules are the formats, pure: building a batch's lines
and reading its results back into one outcome per job."""
