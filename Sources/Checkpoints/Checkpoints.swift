/// Checkpoints: SafeTensors files, diffusers folders and LoRA key formats.
public enum Checkpoints {}
