namespace Adder.Core;

/// <summary>An error caused by the user's input (a file, an option, an operand). The CLI prints its
/// message on one line and exits non-zero; anything else is a bug and keeps its stack trace.</summary>
public sealed class AdderException(string message, Exception? inner = null) : Exception(message, inner);
