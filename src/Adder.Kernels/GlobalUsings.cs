global using Adder.Core;
