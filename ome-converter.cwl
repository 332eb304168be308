#!/usr/bin/env cwl-runner
# One file for both ways of running the tool:
# - in the image (docker/podman): the image's ENTRYPOINT is already `python3 -m ome_converter`
#   and runners execute ENTRYPOINT + command line, so the command line holds options only
#   (a baseCommand would reach the CLI as stray arguments);
# - without a container (cwltool --no-container --preserve-environment BIOFORMATS_JAR, with the
#   project's python3 first on PATH): the command line starts with `python3 -m ome_converter`.
# Hence no baseCommand: the first argument adds the command unless the job runs in the image,
# recognised by its output directory, which dockerOutputDirectory pins. cwltool's warnings about
# that path, about dockerOutputDirectory under hints and about outDir being both an input and
# an output (the WIPP/ICT convention) are expected.
cwlVersion: v1.2
class: CommandLineTool
label: OME Converter
doc: |-
  Convert every series of every image in a collection (any Bio-Formats format, TIFF, OME-Zarr)
  to 1024x1024-tiled OME-TIFF or OME-Zarr. Unset optional inputs take the CLI's defaults.
hints:
  # a hint, not a requirement: cwltool --no-container refuses a tool that requires Docker
  DockerRequirement:
    dockerPull: polusai/ome-converter-plugin:0.1.0
    dockerOutputDirectory: /var/spool/cwl
requirements:
  InlineJavascriptRequirement: {}
  InitialWorkDirRequirement:
    listing:
    - entry: $(inputs.outDir)
      writable: true
arguments:
- position: -1
  valueFrom: |-
    ${ return runtime.outdir == "/var/spool/cwl" ? [] : ["python3", "-m", "ome_converter"]; }
inputs:
  inpDir:
    type: Directory
    doc: 'Input image collection: files of any Bio-Formats format and .zarr stores'
    inputBinding:
      prefix: --inpDir
  filePattern:
    type: string?
    doc: filepattern pattern or regular expression selecting input names (default .+)
    inputBinding:
      prefix: --filePattern
  fileExtension:
    type:
    - 'null'
    - type: enum
      symbols: [.ome.tif, .ome.zarr]
    doc: Output format (default .ome.tif)
    inputBinding:
      prefix: --fileExtension
  layout:
    type:
    - 'null'
    - type: enum
      symbols: [plane, series]
    doc: 'plane: one 2-D plane per output file; series: each series as one 5-D file'
    inputBinding:
      prefix: --layout
  preview:
    type: boolean?
    doc: Write preview.json listing the outputs, and convert nothing
    inputBinding:
      prefix: --preview
  overwrite:
    type: boolean?
    doc: Convert again outputs that already exist
    inputBinding:
      prefix: --overwrite
  numWorkers:
    type: int?
    doc: Worker processes (default one per available core)
    inputBinding:
      prefix: --numWorkers
  numThreads:
    type: int?
    doc: Threads per worker process (default the cores shared among the workers)
    inputBinding:
      prefix: --numThreads
  shard:
    type: string?
    doc: 'I/N: convert only part I (0-based) of N of the collection'
    inputBinding:
      prefix: --shard
  shardCount:
    type: int?
    doc: Number of shards when the part comes from $JOB_COMPLETION_INDEX
    inputBinding:
      prefix: --shardCount
  verifyComplete:
    type: boolean?
    doc: Convert nothing; succeed only when every output exists complete
    inputBinding:
      prefix: --verifyComplete
  outDir:
    type: Directory
    doc: Output collection
    inputBinding:
      prefix: --outDir
outputs:
  outDir:
    type: Directory
    outputBinding:
      glob: $(inputs.outDir.basename)
